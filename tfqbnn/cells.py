"""One sweep cell: its configuration, its folder ``out/<cell>/s<seed>/``, and running it.

A cell (a `Cell` and a seed) trains with `training.run` (or a baseline) and evaluates with
`evaluation.evaluate_model` into its own folder; its ``metrics.json``, written last, marks it finished.
Both sweep backends (`tfqbnn.sweep` one cell after another, `tfqbnn.sweep_ray` as Ray tasks) run
cells with these functions, so they write the same folders.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from tfqbnn.baselines._worker_io import NUM_WEIGHTS as NUM_WEIGHTS_PAPER_MLP
from tfqbnn import rundir
from tfqbnn.config import QuantizationConfig


@dataclasses.dataclass(frozen=True)
class Cell:
    """One configuration of the sweep (a row of its table); with a seed it is one run."""

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


def sweep_fingerprint(profile, num_samples, data):
    """What the cells' results depend on besides the cell and seed: profile, sample count and data."""
    from tfqbnn import training

    prof = training.get_profile(profile)
    return {"profile": {"name": profile if isinstance(profile, str) else "custom", **training.profile_fingerprint(prof)},
            "num_samples": num_samples or prof.eval_samples, "data": training.data_fingerprint(data)}
