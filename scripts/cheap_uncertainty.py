"""Monte Carlo against the hybrid and the probabilistic forward pass on the same trained models.

    python scripts/cheap_uncertainty.py train --runs RUNS [--cells fp32 vpq4 jq4] [--seeds 0 1 2]
    python scripts/cheap_uncertainty.py evaluate --runs RUNS --out results/cheap_uncertainty

``train`` trains the paper MLP per (cell, seed) with `tfqbnn.training.run` (fast profile;
finished models are skipped).  ``evaluate`` loads each model and runs ``mc`` (the reference),
``hybrid`` and ``pfp`` with the same S through `tfqbnn.evaluation.metrics_from_probs`, writes
metrics.json (per model and method, with timings and the quantization diagnostic) and table.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

# name -> (method, covariance, seed offset); "pfp-full" is the PFP with covariances between units;
# "mc-reseeded" is MC again with other seeds: how far two 30-sample MC runs of one model lie apart
METHODS = {"mc": ("mc", "diagonal", 0), "hybrid": ("hybrid", "diagonal", 0), "pfp": ("pfp", "diagonal", 0),
           "pfp-full": ("pfp", "full", 0), "mc-reseeded": ("mc", "diagonal", 5)}
KEYS = ("accuracy", "auroc_aleatoric", "auroc_epistemic", "mean_epistemic_mnist", "mean_epistemic_ambiguous",
        "mean_epistemic_ood", "eval_seconds")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("phase", choices=["train", "evaluate", "timing"])
    p.add_argument("--runs", required=True, help="folder of the trained models (<cell>/s<seed>/model.keras)")
    p.add_argument("--out", default=None, help="results folder (evaluate)")
    p.add_argument("--cells", nargs="+", default=["fp32", "vpq4", "jq4"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--profile", default="fast")
    p.add_argument("--ambiguous-profile", default="small", choices=["default", "small"],
                   help="Ambiguous-MNIST regeneration used for training and evaluation")
    p.add_argument("--samples", type=int, default=30)
    return p.parse_args(argv)


def _profile(args):
    from tfqbnn import training

    return dataclasses.replace(training.get_profile(args.profile), ambiguous_profile=args.ambiguous_profile)


def train(args):
    from tfqbnn import training

    prof = _profile(args)
    data = training.load_data(prof)
    for seed in args.seeds:
        for cell in args.cells:
            out = Path(args.runs) / cell / f"s{seed}"
            if (out / "model.keras").exists():
                continue
            t = time.perf_counter()
            training.run(out, cell, prof, seed, data=data, pretrain_root=Path(args.runs) / "_pretrain", verbose=2)
            print(f"trained {cell} s{seed} in {time.perf_counter() - t:.0f} s", flush=True)


def evaluate(args):
    import keras

    from tfqbnn import evaluation, moments, propagation, training

    data = training.load_data(_profile(args))
    # Ambiguous-MNIST test holds each image 10 times (once per label): score each image once
    amb = data.x_amb_test[::10]
    assert np.array_equal(data.x_amb_test[1::10], amb), "Ambiguous test pairs are not grouped per image"
    sets = {"mnist": data.x_test, "ambiguous": amb, "ood": data.x_ood}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "metrics.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    for seed in args.seeds:
        for cell in args.cells:
            model_path = Path(args.runs) / cell / f"s{seed}" / "model.keras"
            key = f"{cell}/s{seed}"
            if not model_path.exists() or (key in results and all(m in results[key] for m in METHODS)):
                continue
            model = keras.models.load_model(model_path)
            row = results.get(key) or {"diagnostic": moments.diagnostic(model)}
            for method, (kind, covariance, offset) in METHODS.items():
                if method in row:
                    continue
                probs = {}
                t = time.perf_counter()
                for i, (name, x) in enumerate(sets.items()):
                    probs[name] = propagation.predict_probs(model, x, kind, args.samples, seed=seed * 10 + i + offset,
                                                            covariance=covariance)
                seconds = time.perf_counter() - t
                m, _ = evaluation.metrics_from_probs(probs, data.y_test)
                m["eval_seconds"] = round(seconds, 2)
                row[method] = m
                print(f"{key} {method}: " + " ".join(f"{k}={m[k]:.4f}" for k in KEYS), flush=True)
            if cell == "jq4" and seed == args.seeds[0] and "checks" not in row:
                row["checks"] = checks(model, data.x_test[:3])
                print(json.dumps(row["checks"], indent=1), flush=True)
            results[key] = row
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(results, indent=1))
            tmp.replace(path)
    (out / "table.md").write_text(table(results, args.cells))
    print((out / "table.md").read_text())


def checks(model, x, draws=20_000, chunk=500):
    """On one quantized model: Gaussian vs sampler eps in the exact moments, and how Gaussian the
    first layer's pre-activations are (KS distance of draws through the real sampler against N(m, v))."""
    from scipy import stats

    from tfqbnn import moments

    layers = [l for l in model.layers if moments.is_variational(l)]
    out = {"noise_models": {}}
    for layer in layers:
        eg, vg = moments.layer_weight_moments(layer, "gaussian")
        es, vs = moments.layer_weight_moments(layer, "sampler")
        out["noise_models"][layer.name] = {"max_abs_mean_diff": float(np.abs(eg - es).max()),
                                           "max_abs_var_diff": float(np.abs(vg - vs).max()),
                                           "max_var": float(vg.max())}
    first = layers[0]
    ew, vw = moments.layer_weight_moments(first)
    x = x.astype(np.float64)
    m, v = x @ ew, (x * x) @ vw
    z = np.concatenate([np.einsum("bi,nij->nbj", x, first.sample_weights(groups=chunk).numpy())
                        for _ in range(draws // chunk)])  # [draws, images, units]
    ks = np.array([[stats.kstest((z[:, b, j] - m[b, j]) / np.sqrt(v[b, j]), "norm").statistic
                    for j in range(z.shape[2])] for b in range(z.shape[1])])
    mean_err = np.abs(z.mean(0) - m) / np.sqrt(v / draws)
    out["first_layer_gaussianity"] = {
        "draws": draws, "images": int(x.shape[0]), "units": int(z.shape[2]),
        "ks_median": float(np.median(ks)), "ks_max": float(ks.max()),
        "ks_1pct_critical": float(1.63 / np.sqrt(draws)),
        "max_mean_error_in_standard_errors": float(mean_err.max()),
        "var_ratio_range": [float((z.var(0) / v).min()), float((z.var(0) / v).max())],
    }
    return out


def table(results, cells):
    """Mean ± sd over seeds per (cell, method), and the largest |method - mc| over seeds."""
    lines = ["| model | method | seeds | accuracy % | AUROC entropy MNIST/Amb | AUROC MI MNIST/Fashion "
             "| mean MI MNIST | mean MI Amb | mean MI Fashion | eval s (26k images) "
             "| max abs Δ acc (pt) | max abs Δ AUROC ent | max abs Δ AUROC MI |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for cell in cells:
        rows = [r for k, r in results.items() if k.split("/")[0] == cell]
        if not rows:
            continue
        for method in [m for m in METHODS if all(m in r for r in rows)]:
            def ms(k, scale=1.0, nd=4):
                v = np.array([r[method][k] for r in rows]) * scale
                return f"{v.mean():.{nd}f} ± {v.std(ddof=1) if len(v) > 1 else 0:.{nd}f}"

            def dmax(k, scale=1.0):
                return max(abs(r[method][k] - r["mc"][k]) * scale for r in rows)

            delta = ("-", "-", "-") if method == "mc" else (
                f"{dmax('accuracy', 100):.2f}", f"{dmax('auroc_aleatoric'):.4f}", f"{dmax('auroc_epistemic'):.4f}")
            lines.append(
                f"| {cell} | {method} | {len(rows)} | {ms('accuracy', 100, 2)} | {ms('auroc_aleatoric')} "
                f"| {ms('auroc_epistemic')} | {ms('mean_epistemic_mnist')} | {ms('mean_epistemic_ambiguous')} "
                f"| {ms('mean_epistemic_ood')} | {ms('eval_seconds', 1, 1)} | {' | '.join(delta)} |")
    return "\n".join(lines) + "\n"


def timing(args, repeats=3):
    """Seconds per method on the 10,000 MNIST test images of one model (best of ``repeats``; the
    machine is shared, so the minimum is the least disturbed run)."""
    import keras

    from tfqbnn import propagation, training

    data = training.load_data(_profile(args))
    x = data.x_test
    out = {}
    for cell in args.cells:
        model = keras.models.load_model(Path(args.runs) / cell / f"s{args.seeds[0]}" / "model.keras")
        row = {}
        for method, (kind, covariance, _) in METHODS.items():
            if method == "mc-reseeded":
                continue
            propagation.predict_probs(model, x[:64], kind, args.samples, seed=0, covariance=covariance)  # trace
            times = []
            for r in range(repeats):
                t = time.perf_counter()
                propagation.predict_probs(model, x, kind, args.samples, seed=r, covariance=covariance)
                times.append(time.perf_counter() - t)
            row[method] = round(min(times), 2)
        out[cell] = row
        print(cell, row, flush=True)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "timing.json").write_text(json.dumps(out, indent=1))


def main(argv=None):
    args = parse_args(argv)
    if args.phase == "train":
        train(args)
    elif args.phase == "timing":
        timing(args)
    else:
        if not args.out:
            raise SystemExit("cheap_uncertainty.py: evaluate needs --out")
        evaluate(args)


if __name__ == "__main__":
    main()
