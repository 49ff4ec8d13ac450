"""`run_baseline`: trains a baseline, predicts the Dirty-MNIST test sets and scores them like the BNN cells.

``det`` runs here (Keras 3).  ``qat4`` (tensorflow-model-optimization) and ``flipout``
(``tfp.layers``) need tf_keras, and tfmot switches a whole process to legacy Keras on
import, so they run in a child process (``python -m tfqbnn.baselines._qat_worker`` /
``_flipout_worker``) with ``TF_USE_LEGACY_KERAS=1``; arrays go through ``.npz`` files in
``out_dir`` and the metrics are computed here with `tfqbnn.evaluation.metrics_from_probs`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np

from tfqbnn.baselines import _worker_io as io

BASELINES = ("det", "qat4", "flipout")
_WORKERS = {"qat4": "tfqbnn.baselines._qat_worker", "flipout": "tfqbnn.baselines._flipout_worker"}
_PROPAGATED = ("val_accuracy", "num_weights", "param_bytes", "train_seconds", "predict_seconds",
               "max_distinct_weight_values", "float_val_accuracy", "qat_initial_val_accuracy", "float_epochs",
               "qat_epochs", "tf_keras_version", "tfmot_version", "tfp_version")


def _check_int(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}; received {name}={value!r}")
    return int(value)


def run_worker(name, out_dir, epochs, seed=0, num_samples=30, batch_size=128, verbose=0, timeout=None):
    """Runs a tf_keras worker on ``out_dir/inputs.npz`` in a child process; returns (probs, info).

    The child gets ``TF_USE_LEGACY_KERAS=1`` before anything imports TensorFlow; its output
    goes to ``out_dir/worker.log``.
    """
    if name not in _WORKERS:
        raise ValueError(f"No worker for baseline {name!r}; workers exist for {sorted(_WORKERS)}")
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    cmd = [sys.executable, "-m", _WORKERS[name], "--out-dir", os.fspath(out_dir), "--epochs", str(epochs),
           "--seed", str(seed), "--num-samples", str(num_samples), "--batch-size", str(batch_size),
           "--verbose", str(int(bool(verbose)))]
    log_path = os.path.join(out_dir, "worker.log")
    for stale in (io.PROBS, io.WORKER_JSON):
        if os.path.exists(os.path.join(out_dir, stale)):
            os.remove(os.path.join(out_dir, stale))
    with open(log_path, "w") as log:
        # verbose: the worker's epoch lines reach the console, its warnings still go to the log.
        out, err = (None, log) if verbose else (log, subprocess.STDOUT)
        proc = subprocess.run(cmd, env=env, stdout=out, stderr=err, timeout=timeout)
    if proc.returncode != 0:
        with open(log_path) as f:
            tail = "".join(f.readlines()[-15:])
        raise RuntimeError(f"baseline {name!r}: worker exited with code {proc.returncode} (log {log_path}):\n{tail}")
    return io.read_outputs(out_dir)


def run_baseline(name, data, out_dir, epochs, seed=0, num_samples=30, batch_size=128, verbose=0,
                 keep_files=False, timeout=None):
    """Trains and evaluates one baseline of Table I.

    Args:
        name: ``"det"`` (deterministic SoftPlus MLP, Keras 3), ``"qat4"`` (deterministic 4-bit QAT
            MLP, tfmot, subprocess) or ``"flipout"`` (FP32 TFP DenseFlipout BNN, subprocess).
        data: a `tfqbnn.datasets.DirtyMNIST` (x_train/y_train, x_val/y_val, x_test/y_test,
            x_amb_test, x_ood).
        out_dir: run folder; receives ``metrics.json`` and ``per_image.npz`` (as the BNN cells),
            ``worker.json`` / ``worker.log`` for subprocess baselines.
        epochs: training epochs (``qat4``: float training then QAT, a third of them QAT).
        num_samples: Monte-Carlo samples S for ``flipout`` (the deterministic ones use S = 1).
        keep_files: keep the worker's ``inputs.npz`` and the raw ``probs.npz`` (large) instead
            of deleting them.

    Returns:
        The metrics dict (also written to ``out_dir/metrics.json``).
    """
    if name not in BASELINES:
        raise ValueError(f"Unknown baseline {name!r}; expected one of {list(BASELINES)}")
    epochs = _check_int("epochs", epochs)
    seed = _check_int("seed", seed, minimum=0)
    num_samples = _check_int("num_samples", num_samples)
    batch_size = _check_int("batch_size", batch_size)
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)

    t0 = time.perf_counter()
    if name == "det":
        from tfqbnn.baselines.deterministic import train_and_predict

        probs, info = train_and_predict(data, epochs, seed=seed, batch_size=batch_size, verbose=verbose)
        if keep_files:
            np.savez(os.path.join(out_dir, io.PROBS), **probs)
    else:
        inputs = io.write_inputs(os.path.join(out_dir, io.INPUTS), data)
        try:
            probs, info = run_worker(name, out_dir, epochs, seed, num_samples, batch_size, verbose, timeout)
        finally:
            if not keep_files and os.path.exists(inputs):
                os.remove(inputs)
        if not keep_files:
            os.remove(os.path.join(out_dir, io.PROBS))
    wall = time.perf_counter() - t0

    from tfqbnn.evaluation import metrics_from_probs

    metrics, per_image = metrics_from_probs(probs, data.y_test)
    metrics.update({k: info[k] for k in _PROPAGATED if k in info})
    metrics.update({
        "baseline": name,
        "strategy": name,
        "bits": 4 if name == "qat4" else 32,
        "seed": seed,
        "epochs": epochs,
        "eval_seconds": info.get("predict_seconds"),
        "eval_images": int(sum(np.asarray(p).shape[1] for p in probs.values())),
        "wall_seconds": round(wall, 2),
    })
    np.savez(os.path.join(out_dir, "per_image.npz"), **per_image)
    # metrics.json last and atomically: its presence marks a finished run (the sweep resumes on it).
    tmp = os.path.join(out_dir, "metrics.json.tmp")
    with open(tmp, "w") as f:
        json.dump(metrics, f, indent=1, sort_keys=True)
    os.replace(tmp, os.path.join(out_dir, "metrics.json"))
    return metrics
