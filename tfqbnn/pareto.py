"""The memory-uncertainty Pareto front of a fully Bayesian model (``arch``: the paper MLP or LeNet-5 "all"):
uniform JQ-2..8 and FP32 against per-layer mu / sigma bits chosen by `tfqbnn.allocate_bits` under byte budgets.

Per seed: every uniform point trains with `training.run` (one shared pretraining); the JQ-8 model is the base of
the allocation (its sensitivities are measured once, on the validation split or a subset of it and Fashion-MNIST
*train* images, and reused by every budget); each budget's choice is evaluated as is, after a short Bayesian
fine-tune, and retrained at its bits from the pretrained model (``variants``). Every point is evaluated on the
test sets with `evaluation.evaluate_model` (reporting only). Finished points are kept in ``out/points.json`` and
skipped on a rerun; rows of other baselines in ``out/points-baseline.json`` (same schema) join the tables and
the plot.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from tfqbnn import allocation, rundir

UNIFORM = ("fp32", "jq8", "jq7", "jq6", "jq5", "jq4", "jq3", "jq2")
BASE = "jq8"
COLUMNS = ("point", "kind", "seed", "budget_bytes", "stored_bytes", "bits", "accuracy", "auroc_aleatoric",
           "auroc_epistemic", "nll", "ece", "mean_epistemic_mnist", "mean_epistemic_ood", "seconds")
VARIANTS = ("none", "ft", "qat")
# the look of each arch's front: the byte target and tolerances (accuracy, AUROC) around FP32
TARGETS = {"mlp": (50000, 0.001, 0.005), "lenet5": (36000, 0.002, 0.01)}


def layer_weights(arch):
    """Weights per variational layer of `arch` (fully Bayesian), in model order, counted on the built model."""
    from tfqbnn import models

    model = models.bayesian_model(arch, "all", quantization="jq8", num_examples=1)
    return tuple(int(np.prod(l.mu.shape)) for l in allocation.variational_layers(model))


def uniform_bytes(name, weights):
    if name == "fp32":
        return 8 * sum(weights)
    b = int(name[2:])
    return sum(allocation.stored_bytes(n, b, b) for n in weights)


def pareto_profile(ambiguous_profile="small", eval_images=10000, schedule="fast"):
    """The `schedule` profile ("fast", or "conv-quick" for a LeNet front on a busy machine) on a given
    Ambiguous-MNIST regeneration, evaluated on `eval_images` per test set."""
    from tfqbnn import training

    return dataclasses.replace(training.get_profile(schedule), ambiguous_profile=ambiguous_profile,
                               eval_images=eval_images)


def _load(out, name="points.json"):
    path = Path(out) / name
    return json.loads(path.read_text()) if path.is_file() else []


def load_all(out):
    """The points of ``out/points.json`` and the baseline rows of ``out/points-baseline.json`` (if any)."""
    return _load(out) + _load(out, "points-baseline.json")


def _save(out, points):
    rundir.write_json(Path(out) / "points.json", points)


def _append(out, row):
    """Add a row to ``out/points.json`` under a file lock: runs of other seeds may append to the same file."""
    import fcntl

    with open(Path(out) / "points.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _save(out, _load(out) + [row])


def _row(point, kind, seed, metrics, stored, budget=None, bits=None, seconds=None):
    return {"point": point, "kind": kind, "seed": seed, "budget_bytes": budget, "stored_bytes": int(stored),
            "bits": bits, **{k: metrics[k] for k in COLUMNS if k in metrics}, "seconds": seconds}


def train_mixed(configs, data, profile, seed, pretrained, run_path, arch="mlp"):
    """The Bayesian stage of `training.train_bnn` (same epochs, schedule and callbacks) for per-layer `configs`,
    initialised from the seed's pretrained deterministic model: the mixed twin of a uniform point."""
    import types

    from tfqbnn import callbacks, models, training

    keras_seed(seed)
    x, _ = training._train_slice(data, profile, seed)
    bnn = models.bayesian_model(arch, "all", quantization=configs, num_examples=len(x), prior_std=profile.prior_std,
                                init_sigma=profile.init_sigma, rho_scale=profile.rho_scale, seed=seed)
    models.init_from_deterministic(bnn, pretrained)
    run_path = Path(run_path)
    run_path.mkdir(parents=True, exist_ok=True)
    rd = types.SimpleNamespace(path=run_path, scratch=run_path / "scratch")
    training._fit(bnn, data, profile, seed, profile.bnn_epochs, profile.bnn_lr, rd,
                  extra_callbacks=[callbacks.KLAnnealing("linear", warmup=profile.kl_warmup)], verbose=0,
                  schedule=profile.bnn_lr_schedule, augment_shift=profile.bnn_augment_shift)
    return bnn


def keras_seed(seed):
    import keras

    keras.utils.set_random_seed(seed)


def _load_sensitivity(path, num_samples, aleatoric_weight=None, val_images=None):
    """A saved `layer_sensitivity` result (keys "mb,sb,range") if it was measured with the same settings."""
    if not Path(path).is_file():
        return None
    d = json.loads(Path(path).read_text())
    if (d.get("num_samples") != num_samples or "fit_bits" not in d or d.get("aleatoric_weight") != aleatoric_weight
            or (val_images is not None and d.get("val_images") != val_images)):
        return None
    table = {n: {(int(k.split(",")[0]), int(k.split(",")[1]), k.split(",")[2]): r for k, r in rows.items()}
             for n, rows in d["layers"].items()}
    return (table, d["reference"]), d["seconds"]


def val_subset(data, digits=None, seed=0):
    """(x, y, ambiguous mask) of the validation split; with `digits`, a cheaper subset: `digits` random MNIST
    validation rows and every Ambiguous validation image once (its first label row)."""
    amb = data.val_is_ambiguous
    if digits is None:
        return data.x_val, data.y_val, amb
    clean = np.flatnonzero(~amb)
    clean = np.sort(np.random.default_rng(seed).choice(clean, min(int(digits), len(clean)), replace=False))
    rows = np.flatnonzero(amb)
    first = rows[np.r_[True, np.any(data.x_val[rows[1:]] != data.x_val[rows[:-1]], axis=1)]]
    idx = np.r_[clean, first]
    return data.x_val[idx], data.y_val[idx], amb[idx]


def small_layer_choices(weights, layers, share=0.02):
    """{layer: the byte-full pairs (mu + sigma = 8 bits)} for layers holding under `share` of the weights: their
    bytes hardly count, so their search is cut to 4 evaluations."""
    total = sum(weights)
    return {n: [(mb, 8 - mb) for mb in range(4, 8)] for n, w in zip(layers, weights) if w < share * total}


def run_seed(out, seed, budgets, data, profile, ood_val, num_samples=30, sens_samples=10, fine_tune_epochs=1,
             fine_tune_lr=1e-4, uniform=UNIFORM, retrain=True, log=print, arch="mlp", variants=VARIANTS,
             val_digits=None, aleatoric_weight=None, tag="", cut_small_layers=False):
    """All points of one seed (skipping those in ``out/points.json``); returns the rows.

    `variants` of each budget's point: "none" (the JQ-8 weights re-quantized), "ft" (`fine_tune_epochs` more),
    "qat" (the Bayesian stage retrained at the chosen bits); `retrain=False` drops "qat". `val_digits`: the
    sensitivity runs on `val_subset`. `aleatoric_weight`: None leaves the entropy term out of the cost, else
    its weight. `tag` goes into the mixed point names (``mixed-B{tag}-qat``) and the sensitivity file.
    `cut_small_layers`: `small_layer_choices` for the layers under 2 % of the weights."""
    from tfqbnn import evaluation, training
    from tfqbnn.cells import _eval_subset

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    points = _load(out)
    have = {(p["point"], p["seed"]) for p in points}
    test = _eval_subset(data, profile.eval_images)

    def add(row):
        points.append(row)
        _append(out, row)
        log(f"{row['point']} s{seed}: {row['stored_bytes']} B, acc {row['accuracy']:.4f}, "
            f"entropy AUROC {row['auroc_aleatoric']:.4f}, MI AUROC {row['auroc_epistemic']:.4f}")

    def train(q):
        cfg = training.RunConfig(q, profile, seed, arch=arch)
        return training.run(out / "runs" / f"{q}-s{seed}", config=cfg, data=data, pretrain_root=out / "_pretrain",
                            verbose=0)

    weights = layer_weights(arch)
    for q in uniform:
        if (q, seed) in have:
            continue
        t = time.perf_counter()
        model = train(q)
        m, _ = evaluation.evaluate_model(model, test, num_samples=num_samples, seed=seed)
        add(_row(q, "uniform", seed, m, uniform_bytes(q, weights), seconds=round(time.perf_counter() - t, 1)))
    variants = [v for v in variants if (v != "qat" or retrain) and (v != "ft" or fine_tune_epochs)]
    suffix = {"none": "", "ft": "-ft", "qat": "-qat"}
    todo = [b for b in budgets if any((f"mixed-{b}{tag}{suffix[v]}", seed) not in have for v in variants)]
    if not todo:
        return [p for p in _load(out) if p["seed"] == seed]
    base = train(BASE)
    sens_path = out / f"sensitivity{tag}-s{seed}.json"
    x_val, y_val, val_amb = val_subset(data, val_digits, seed)
    names = [l.name for l in allocation.variational_layers(base)]
    choices = small_layer_choices(weights, names) if cut_small_layers else allocation.PACKED_CHOICES
    cached = _load_sensitivity(sens_path, sens_samples, aleatoric_weight, int(len(x_val)))
    if cached is not None:
        sens, sens_seconds = cached
    else:
        t = time.perf_counter()
        sens = allocation.layer_sensitivity(
            base, x_val, y_val, ood_val, choices=choices, num_samples=sens_samples, seed=seed,
            val_ambiguous=val_amb if aleatoric_weight is not None else None,
            aleatoric_weight=aleatoric_weight if aleatoric_weight is not None else 1.0)
        sens_seconds = time.perf_counter() - t
    table, ref = sens
    rundir.write_json(sens_path, {"seconds": sens_seconds, "reference": ref, "num_samples": sens_samples, "fit_bits": 3,
                                  "aleatoric_weight": aleatoric_weight,
                                  "val_images": int(len(x_val)), "ood_images": int(len(ood_val)),
                                  "evaluations": sum(len(rows) for rows in table.values()),
                                  "layers": {n: {",".join(map(str, c)): r for c, r in rows.items()}
                                             for n, rows in table.items()}})
    log(f"sensitivity{tag} s{seed}: {sens_seconds:.0f} s, {sum(len(r) for r in table.values())} evaluations")
    for budget in todo:
        t = time.perf_counter()
        a = allocation.allocate_bits(base, x_val, y_val, budget, sensitivity=sens)
        solve_seconds = time.perf_counter() - t
        bits = {n: list(b) for n, b in zip(a.layers, a.bits)}
        ranges = {n: [float(f"{v:.4g}") for v in r] for n, r in zip(a.layers, a.sigma_ranges)}
        todo_variants = [(f"mixed-{budget}{tag}{suffix[v]}", {"none": 0, "ft": fine_tune_epochs, "qat": "qat"}[v])
                         for v in variants]
        for name, epochs in todo_variants:
            if (name, seed) in have:
                continue
            t = time.perf_counter()
            if epochs == "qat":
                pretrained = training.pretrain(
                    data, training.pretrain_dir(None, None, None, out / "_pretrain",
                                                training.RunConfig(BASE, profile, seed, arch=arch), data),
                    config=training.RunConfig(BASE, profile, seed, arch=arch), verbose=0)
                model = train_mixed(a.configs, data, profile, seed, pretrained, out / "runs" / f"{name}-s{seed}",
                                    arch)
            else:
                model = allocation.fine_tune(base, a, data.x_train, data.y_train, epochs=epochs, lr=fine_tune_lr,
                                             seed=seed)
            tune_seconds = time.perf_counter() - t
            m, _ = evaluation.evaluate_model(model, test, num_samples=num_samples, seed=seed)
            kind = "mixed" if not epochs else ("mixed+qat" if epochs == "qat" else "mixed+ft")
            row = _row(name, kind, seed, m, a.stored_bytes, budget, bits, round(time.perf_counter() - t, 1))
            row.update(sigma_ranges=ranges, search_seconds=round(sens_seconds + solve_seconds, 1),
                       fine_tune_seconds=round(tune_seconds, 1),
                       fine_tune_epochs=epochs, predicted_cost=a.predicted_cost)
            add(row)
            if epochs:
                model.save(out / "runs" / f"{name}-s{seed}.keras")
            del model
    return [p for p in _load(out) if p["seed"] == seed]


def summarise(points):
    """Mean and standard deviation over seeds per point, in a stable order."""
    groups = {}
    for p in points:
        groups.setdefault(p["point"], []).append(p)
    rows = []
    for name, ps in groups.items():
        r = {"point": name, "kind": ps[0]["kind"], "seeds": len(ps), "budget_bytes": ps[0]["budget_bytes"],
             "stored_bytes": ps[0]["stored_bytes"], "bits": ps[0]["bits"]}
        if len({p["stored_bytes"] for p in ps}) > 1 or any(p["bits"] != ps[0]["bits"] for p in ps):
            r["stored_bytes"] = float(np.mean([p["stored_bytes"] for p in ps]))
            r["bits"] = {str(p["seed"]): p["bits"] for p in ps}
        for k in ("accuracy", "auroc_aleatoric", "auroc_epistemic", "nll", "ece"):
            v = np.array([p[k] for p in ps], float)
            r[k], r[k + "_sd"] = float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0
        rows.append(r)
    return sorted(rows, key=lambda r: (r["kind"] != "uniform", -r["stored_bytes"]))


def write_tables(points, out):
    out = Path(out)
    rows = summarise(points)
    fields = ["point", "kind", "seeds", "budget_bytes", "stored_bytes", "bits", "accuracy", "accuracy_sd",
              "auroc_aleatoric", "auroc_aleatoric_sd", "auroc_epistemic", "auroc_epistemic_sd", "nll", "ece"]
    with open(out / "table.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({**r, "bits": json.dumps(r["bits"]) if r["bits"] is not None else ""})
    md = ["| point | seeds | stored bytes | bits per layer (mu, sigma) | accuracy % | AUROC entropy MNIST/Amb | "
          "AUROC MI MNIST/Fashion | NLL |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        bits = "" if r["bits"] is None else (", ".join(f"{b[0]}/{b[1]}" for b in r["bits"].values())
                                             if all(isinstance(b, list) for b in r["bits"].values()) else "per seed")
        md.append(f"| {r['point']} | {r['seeds']} | {r['stored_bytes']:,.0f} | {bits} | "
                  f"{100 * r['accuracy']:.2f} ± {100 * r['accuracy_sd']:.2f} | "
                  f"{r['auroc_aleatoric']:.4f} ± {r['auroc_aleatoric_sd']:.4f} | "
                  f"{r['auroc_epistemic']:.4f} ± {r['auroc_epistemic_sd']:.4f} | {r['nll']:.3f} |")
    (out / "table.md").write_text("\n".join(md) + "\n")
    return rows


def plot(rows, path, arch="mlp", schedule="fast"):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = (("accuracy", "accuracy"), ("auroc_aleatoric", "AUROC entropy MNIST vs Ambiguous"),
               ("auroc_epistemic", "AUROC MI MNIST vs Fashion"))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    target, acc_tol, auroc_tol = TARGETS[arch]
    fp32 = next((r for r in rows if r["point"] == "fp32"), None)
    uni = sorted((r for r in rows if r["kind"] == "uniform" and r["point"] != "fp32"), key=lambda r: r["stored_bytes"])
    for ax, (key, label) in zip(axes, metrics):
        if uni:
            ax.errorbar([r["stored_bytes"] for r in uni], [r[key] for r in uni], [r[key + "_sd"] for r in uni],
                        marker="o", label="uniform JQ-2..8", capsize=3)
            for r in uni:
                ax.annotate(r["point"], (r["stored_bytes"], r[key]), fontsize=7, xytext=(3, -9),
                            textcoords="offset points")
        for kind, marker in (("mixed", "s"), ("mixed+ft", "D"), ("mixed+qat", "^"), ("deterministic", "x")):
            pts = sorted((r for r in rows if r["kind"] == kind), key=lambda r: r["stored_bytes"])
            if pts:
                ax.errorbar([r["stored_bytes"] for r in pts], [r[key] for r in pts], [r[key + "_sd"] for r in pts],
                            marker=marker, linestyle="--", capsize=3,
                            label={"mixed": "per-layer bits (JQ-8 weights re-quantized)",
                                   "mixed+ft": "per-layer bits + fine-tune",
                                   "mixed+qat": "per-layer bits, Bayesian stage retrained",
                                   "deterministic": "deterministic, HGQ2 (own schedule: baseline.md)"}[kind])
        if fp32:
            ax.axhline(fp32[key], color="k", lw=0.8, label=f"FP32 ({fp32['stored_bytes']:,.0f} B)")
            tol = acc_tol if key == "accuracy" else auroc_tol
            ax.axhspan(fp32[key] - tol, fp32[key] + tol, color="k", alpha=0.08)
        ax.axvline(target, color="r", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_xlabel("stored bytes (mu + sigma codes)")
        ax.set_title(label, fontsize=10)
        if key == "accuracy":
            lo = min(r[key] for r in rows)
            ax.set_ylim(max(lo - 0.002, 0.9), None)
    axes[0].legend(fontsize=7)
    title = {"mlp": "Paper MLP", "lenet5": 'LeNet-5 "all"'}[arch]
    fig.suptitle(f"{title}, {schedule} profile: stored bytes vs accuracy and uncertainty (shaded: FP32 +- target)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
