"""The paper's Table I as a resumable sweep: strategies x bit widths x seeds, ablations, baselines.

Each cell (configuration, seed) runs with `tfqbnn.cells.run_cell` into its own folder
``out/<cell>/s<seed>/``; a cell whose ``metrics.json`` exists is skipped, so a killed sweep resumes.
The cells run one after another here, or as Ray tasks (`tfqbnn.sweep_ray`); then come the tables and the plot.

``out`` is a `tfqbnn.rundir.RunDir` of kind ``"sweep"``: its fingerprint (profile, samples, data)
is checked before any cell is skipped or resumed, so finished cells of another profile or data are
never mixed into a table; a foreign non-empty ``out`` is refused unless ``overwrite``.
"""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import numpy as np

from tfqbnn import rundir
# Cell, cell_dir, stored_bytes and _eval_subset stay importable from here (scripts, tests and results use them)
from tfqbnn.cells import (PRETRAIN, Cell, _eval_subset, cell_dir, run_cell, stored_bytes,  # noqa: F401
                          sweep_fingerprint)
from tfqbnn.config import QuantizationConfig

BITS = (8, 7, 6, 5, 4, 3, 2)
METRIC_COLUMNS = ("accuracy", "auroc_aleatoric", "auroc_epistemic", "auroc_entropy_ood", "auroc_mi_ambiguous",
                  "nll", "ece", "mean_epistemic_mnist", "mean_epistemic_ood")


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
