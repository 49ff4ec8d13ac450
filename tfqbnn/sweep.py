"""The paper's Table I as a resumable sweep: strategies x bit widths x seeds, ablations, baselines.

Each cell (configuration, seed) trains with `training.run` and evaluates with
`evaluation.evaluate_model` into its own folder ``out/<cell>/s<seed>/``; a cell
whose ``metrics.json`` exists is skipped, so a killed sweep resumes.

``out`` is a `tfqbnn.rundir.RunDir` of kind ``"sweep"``: its fingerprint (profile, samples, data)
is checked before any cell is skipped or resumed, so finished cells of another profile or data are
never mixed into a table; a foreign non-empty ``out`` is refused unless ``overwrite``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import time
from pathlib import Path

import numpy as np

from tfqbnn.baselines._worker_io import NUM_WEIGHTS as NUM_WEIGHTS_PAPER_MLP
from tfqbnn import rundir
from tfqbnn.config import QuantizationConfig

BITS = (8, 7, 6, 5, 4, 3, 2)
METRIC_COLUMNS = ("accuracy", "auroc_aleatoric", "auroc_epistemic", "auroc_entropy_ood", "auroc_mi_ambiguous",
                  "nll", "ece", "mean_epistemic_mnist", "mean_epistemic_ood")


@dataclasses.dataclass(frozen=True)
class Cell:
    name: str
    quantization: str | dict | None = None
    activation: str = "softplus"
    baseline: str | None = None
    group: str = "table"
    arch: str = "mlp"
    bayesian: str = "all"

    @property
    def config(self):
        return QuantizationConfig.get(self.quantization)


def table_cells(bits=BITS, ablations=True, baselines=True):
    cells = [Cell("fp32", "fp32")]
    for strategy in ("vpq", "spq", "jq"):
        cells += [Cell(f"{strategy}{b}", f"{strategy}{b}") for b in bits]
    if ablations:
        cells += [
            Cell("vpq4-uniform", QuantizationConfig("vpq", 4, sigma_quantizer="uniform").get_config(),
                 group="ablation"),
            Cell("jq4-uniform", QuantizationConfig("jq", 4, sigma_quantizer="uniform").get_config(),
                 group="ablation"),
            Cell("spq7-relu", "spq7", activation="relu", group="ablation"),
            Cell("jq4-relu", "jq4", activation="relu", group="ablation"),
        ]
    if baselines:
        cells += [Cell(f"baseline-{b}", None, baseline=b, group="baseline") for b in ("det", "qat4", "flipout")]
    return cells


def lenet_cells(quantizations=("fp32", "jq4")):
    """LeNet-5 rows: each quantization fully Bayesian ("all") and with a Bayesian head only."""
    return [Cell(f"lenet5-{q}-{b}", q, arch="lenet5", bayesian=b, group="lenet5")
            for q in quantizations for b in ("all", "head")]


def _model_stored_bytes(cell):
    """Bit-packed bytes of a built model of the cell: variational layers store mu and sigma at
    their bits (float32 where unquantized), quantized deterministic layers their kernel plus one
    float32 scale per channel (or tensor), float layers 4 bytes per weight."""
    from tfqbnn import models
    from tfqbnn.layers import VariationalLayer

    q = cell.config
    extra = {"deterministic_bits": q.weight_bits} if cell.bayesian == "head" else {}
    model = models.bayesian_model(cell.arch, cell.bayesian, quantization=q, **extra)
    total = fp32 = 0
    for layer in model.layers:
        if isinstance(layer, VariationalLayer):
            n = int(np.prod(layer.mu.shape))
            total += int(np.ceil(n * ((q.mu_bits or 32) + (q.sigma_bits or 32)) / 8))
            fp32 += 8 * n
        elif hasattr(layer, "kernel"):
            n = int(np.prod(layer.kernel.shape))
            bits = getattr(layer, "kernel_bits", None)
            if bits is None:
                total += 4 * n
            else:
                scales = layer.kernel.shape[-1] if layer.per_channel else 1
                total += int(np.ceil(n * bits / 8)) + 4 * scales
            fp32 += 8 * n  # against a fully Bayesian float32 model
    return total, fp32 / total


def stored_bytes(cell, num_weights=NUM_WEIGHTS_PAPER_MLP):
    """Bytes of stored parameters (bit-packed), and the reduction against float32 mu + sigma."""
    if cell.arch != "mlp":
        return _model_stored_bytes(cell)
    fp32 = 8 * num_weights
    if cell.baseline == "det":
        return 4 * num_weights, fp32 / (4 * num_weights)
    if cell.baseline == "qat4":
        return num_weights // 2, fp32 / (num_weights // 2)
    if cell.baseline == "flipout":
        return fp32, 1.0
    q = cell.config
    # SPQ quantizes the samples only: mu and sigma stay float32 in storage.
    mu_bits = q.mu_bits or 32
    sigma_bits = q.sigma_bits or 32
    nbytes = int(np.ceil(num_weights * (mu_bits + sigma_bits) / 8))
    return nbytes, fp32 / nbytes


PRETRAIN = "_pretrain"  # stage-1 models of the sweep, shared by the cells of one seed (and activation)


def cell_dir(out_root, cell, seed):
    return Path(out_root) / cell.name / f"s{seed}"


def finished_metrics(out_root, cell, seed):
    """The metrics of a finished cell, or None (no metrics.json, or one not written by `run_cell`)."""
    metrics_path = cell_dir(out_root, cell, seed) / "metrics.json"
    if metrics_path.exists():
        done = json.loads(metrics_path.read_text())
        if "cell" in done:  # written by `run_cell` last: the whole cell finished
            return done
    return None


def run_config(cell, seed, profile):
    """The `training.RunConfig` of a trained (non-baseline) cell."""
    from tfqbnn import training

    return training.RunConfig(cell.config, profile, seed, cell.activation, cell.arch, cell.bayesian)


def pretrain_folder(out_root, cell, seed, profile, data):
    """The stage-1 folder a cell trains from (``out_root/_pretrain/<name>``), or None for a baseline."""
    from tfqbnn import training

    if cell.baseline:
        return None
    return training.pretrain_dir(None, None, None, Path(out_root) / PRETRAIN, run_config(cell, seed, profile), data)


def plan(out_root, cells, seeds):
    """The (cell, seed) pairs in table order, split into the finished ones' metrics and the ones to run."""
    done, todo = {}, []
    for seed in seeds:
        for c in cells:
            m = finished_metrics(out_root, c, seed)
            if m is None:
                todo.append((c, seed))
            else:
                done[(c.name, seed)] = m
    return done, todo


def run_cell(cell, seed, data, out_root, profile="fast", num_samples=None, verbose=0):
    """Train and evaluate one cell (skipped if its metrics exist); returns its metrics."""
    from tfqbnn import evaluation, training

    done = finished_metrics(out_root, cell, seed)
    if done is not None:
        return done
    cell_path = cell_dir(out_root, cell, seed)
    metrics_path = cell_path / "metrics.json"
    prof = training.get_profile(profile)
    samples = num_samples or prof.eval_samples
    t = time.perf_counter()
    if cell.baseline:
        from tfqbnn.baselines import run_baseline

        epochs = prof.pretrain_epochs + prof.bnn_epochs
        metrics = run_baseline(cell.baseline, data, cell_path, epochs=epochs, seed=seed, num_samples=samples,
                               batch_size=prof.batch_size)
    else:
        model = training.run(cell_path, data=data, pretrain_root=Path(out_root) / PRETRAIN, verbose=verbose,
                             config=run_config(cell, seed, profile))
        metrics, per_image = evaluation.evaluate_model(model, _eval_subset(data, prof.eval_images),
                                                       num_samples=samples, seed=seed)
        rundir.savez_compressed(cell_path / "per_image.npz", **per_image)
        evaluation.scatter_plot(per_image, cell_path / "scatter.png", title=f"{cell.name} seed {seed}")
    nbytes, reduction = stored_bytes(cell)
    metrics.update(cell=cell.name, seed=seed, group=cell.group, activation=cell.activation, arch=cell.arch,
                   bayesian=cell.bayesian,
                   param_bytes=nbytes, memory_reduction=round(reduction, 2),
                   cell_seconds=round(time.perf_counter() - t, 1))
    cell_path.mkdir(parents=True, exist_ok=True)
    rundir.write_json(metrics_path, metrics)  # atomic: the cell counts as done only when fully written
    return metrics


def _eval_subset(data, n):
    """The first ``n`` images of each test set (a fixed subset), or ``data`` for None.

    Ambiguous-MNIST test rows repeat each image once per label (10 in a row); the subset takes
    unique images (repeating every positive equally does not change an AUROC).
    """
    if not n:
        return data
    return dataclasses.replace(data, x_test=data.x_test[:n], y_test=data.y_test[:n],
                               x_amb_test=data.x_amb_test[::10][:n], y_amb_test=data.y_amb_test[::10][:n],
                               x_ood=data.x_ood[:n], y_ood=data.y_ood[:n])


def collect(out_root, cells, seeds):
    """Metrics of the finished (cell, seed) runs under ``out_root``, in table order."""
    rows = []
    for seed in seeds:
        for c in cells:
            p = Path(out_root) / c.name / f"s{seed}" / "metrics.json"
            if p.exists():
                rows.append(json.loads(p.read_text()))
    return rows


SWEEP_FILES = ("table.csv", "table.md", "bits.png", "sweep.json", PRETRAIN)


def sweep_fingerprint(profile, num_samples, data):
    from tfqbnn import training

    prof = training.get_profile(profile)
    return {"profile": {"name": profile if isinstance(profile, str) else "custom", **training.profile_fingerprint(prof)},
            "num_samples": num_samples or prof.eval_samples, "data": training.data_fingerprint(data)}


def _sweep_dir(out_root, cells, fingerprint=None, overwrite=False):
    names = {c.name for c in table_cells()} | {c.name for c in cells}
    return rundir.RunDir(out_root, "sweep", fingerprint or {}, (*SWEEP_FILES, *names), overwrite)


class CellsFailed(RuntimeError):
    """Cells of a sweep that failed for good (``failures``: ``{"cell", "seed", "error"}``) while ``rows`` finished."""

    def __init__(self, failures, rows):
        self.failures, self.rows = list(failures), list(rows)
        lines = [f"{f['cell']} s{f['seed']}: {f['error']}" for f in self.failures]
        super().__init__(f"{len(lines)} cell(s) failed ({len(self.rows)} finished): " + "; ".join(lines))


def run_sweep(out_root, seeds=(0, 1, 2), profile="fast", cells=None, data=None, num_samples=None,
              table_only=False, overwrite=False, backend="local", ray_options=None):
    """All cells x seeds with a progress bar; writes table.csv, table.md and bits.png.

    With ``table_only`` nothing is trained: the tables are rebuilt from the finished cells.
    ``backend="ray"`` runs the cells as Ray tasks (`tfqbnn.sweep_ray`, options in ``ray_options``, a
    `tfqbnn.sweep_ray.RayOptions`); the folders it writes are the same as the local backend's.

    Returns:
        (rows, wall seconds).

    Raises:
        CellsFailed: (Ray) cells failed for good; raised after the other cells finished and the tables
            of those were written, naming each failed cell and its error; a rerun retries them.
        RunDirError: ``out_root`` is not empty and not a sweep of this profile, sample count and data
            (unless ``overwrite``), or, with ``table_only``, not a sweep at all.
    """
    from tfqbnn import training

    if backend not in ("local", "ray"):
        raise ValueError(f"`backend` must be 'local' or 'ray'; received {backend!r}")
    cells = cells if cells is not None else table_cells()
    out_root = Path(out_root)
    if table_only:
        rd = _sweep_dir(out_root, cells)
        m = rd.read_manifest()
        rows = collect(out_root, cells, seeds)
        # a sweep folder from before run.json existed still tabulates: its cells' metrics name themselves
        if (m is None or m.get("kind") != "sweep") and not all("cell" in r for r in rows or [{}]):
            raise rundir.RunDirError(out_root, "not a tfqbnn sweep folder (no sweep run.json, no finished cells); "
                                               "nothing to tabulate")
        write_tables(rows, out_root, cells)
        plot_bits(rows, out_root / "bits.png")
        return rows, 0.0
    data = data if data is not None else training.load_data(profile)
    rd = _sweep_dir(out_root, cells, sweep_fingerprint(profile, num_samples, data), overwrite)
    rd.open()
    try:
        return _run_cells(rd, out_root, seeds, profile, cells, data, num_samples, backend, ray_options)
    finally:
        rd.release()  # also when cells failed: a rerun in this process may open the folder again


def _run_cells(rd, out_root, seeds, profile, cells, data, num_samples, backend, ray_options):
    t = time.perf_counter()
    if backend == "ray":
        from tfqbnn import sweep_ray

        rows, failures, info = sweep_ray.run_cells(out_root, cells, seeds, data, profile, num_samples, ray_options)
    else:
        rows = _run_local(out_root, cells, seeds, data, profile, num_samples)
    wall = time.perf_counter() - t
    write_tables(rows, out_root, cells)
    plot_bits(rows, out_root / "bits.png")
    summary = {"profile": profile if isinstance(profile, str) else "custom", "seeds": list(seeds),
               "cells": [c.name for c in cells], "wall_seconds_this_run": round(wall, 1),
               "cell_seconds_total": round(sum(r.get("cell_seconds", 0) for r in rows), 1)}
    if backend == "ray":
        summary.update(backend="ray", failed=failures, ray=info)
    rundir.write_json(out_root / "sweep.json", summary)
    if backend == "ray" and failures:
        raise CellsFailed(failures, rows)  # the sweep stays "running" in run.json: a rerun resumes it
    rd.finish()
    return rows, wall


def _run_local(out_root, cells, seeds, data, profile, num_samples):
    from tqdm import tqdm

    rows = []
    with tqdm([(c, s) for s in seeds for c in cells], desc="sweep cells", unit="cell") as bar:
        for cell, seed in bar:
            bar.set_postfix_str(f"{cell.name} s{seed}")
            rows.append(run_cell(cell, seed, data, out_root, profile, num_samples))
    return rows


def _summary(rows, cells):
    by_cell = {}
    for r in rows:
        by_cell.setdefault(r["cell"], []).append(r)
    out = []
    for c in cells:
        rs = by_cell.get(c.name, [])
        if not rs:
            continue
        nbytes, reduction = stored_bytes(c)
        s = {"cell": c.name, "group": c.group, "n_seeds": len(rs), "param_bytes": nbytes,
             "memory_reduction": round(reduction, 2)}
        for k in METRIC_COLUMNS:
            vals = np.array([r[k] for r in rs if k in r], dtype=float)
            s[k] = (float(vals.mean()), float(vals.std(ddof=1)) if len(vals) > 1 else 0.0) if len(vals) else None
        out.append(s)
    return out


def write_tables(rows, out_root, cells):
    out_root = Path(out_root)
    keys = ["cell", "seed", "group", "activation", "param_bytes", "memory_reduction", *METRIC_COLUMNS,
            "num_samples", "cell_seconds"]
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    rundir.write_text(out_root / "table.csv", buf.getvalue())
    summary = _summary(rows, cells)
    head = ("| model | seeds | accuracy % | AUROC entropy MNIST/Amb (aleatoric) | AUROC MI MNIST/Fashion (epistemic) "
            "| AUROC entropy MNIST/Fashion | AUROC MI MNIST/Amb | mean MI MNIST | mean MI Fashion | NLL | ECE "
            "| stored bytes | x smaller |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]

    def fmt(v, scale=1.0, nd=4):
        if v is None:
            return "-"
        m, sd = v
        return f"{m * scale:.{nd}f} ± {sd * scale:.{nd}f}"

    for s in summary:
        lines.append(
            f"| {s['cell']} | {s['n_seeds']} | {fmt(s['accuracy'], 100, 2)} | {fmt(s['auroc_aleatoric'])} "
            f"| {fmt(s['auroc_epistemic'])} | {fmt(s['auroc_entropy_ood'])} | {fmt(s['auroc_mi_ambiguous'])} "
            f"| {fmt(s['mean_epistemic_mnist'])} | {fmt(s['mean_epistemic_ood'])} | {fmt(s['nll'], 1, 3)} "
            f"| {fmt(s['ece'], 1, 3)} | {s['param_bytes']:,} | {s['memory_reduction']:.1f} |"
        )
    rundir.write_text(out_root / "table.md", "\n".join(lines) + "\n")
    return summary


def plot_bits(rows, path):
    """Accuracy and both AUROCs against bits, per strategy (FP32 as a dashed line)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("accuracy", "accuracy"), ("auroc_aleatoric", "AUROC entropy: MNIST vs Ambiguous"),
              ("auroc_epistemic", "AUROC MI: MNIST vs Fashion")]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), dpi=110)
    for ax, (key, title) in zip(axes, panels):
        fp = [r[key] for r in rows if r["cell"] == "fp32"]
        if fp:
            ax.axhline(np.mean(fp), color="k", ls="--", lw=1, label="FP32 BNN")
        for strategy, color in (("vpq", "tab:blue"), ("spq", "tab:orange"), ("jq", "tab:green")):
            pts = {}
            for r in rows:
                name = r["cell"]
                if name.startswith(strategy) and name[len(strategy):].isdigit():
                    pts.setdefault(int(name[len(strategy):]), []).append(r[key])
            if not pts:
                continue
            b = sorted(pts)
            m = np.array([np.mean(pts[k]) for k in b])
            sd = np.array([np.std(pts[k]) for k in b])
            ax.errorbar(b, m, yerr=sd, marker="o", ms=4, capsize=3, color=color, label=strategy.upper())
        ax.set_xlabel("bits")
        ax.set_title(title, fontsize=10)
        ax.invert_xaxis()
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    with rundir.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
