"""Numpy-only I/O shared by the parent and the tf_keras worker processes.

Contract: the parent writes ``inputs.npz`` (float32 [N, 784] images in [0, 1] and
int64 labels) into the run folder; a worker reads it, trains, and writes
``probs.npz`` (float32 [S, N, C] softmax probabilities per test set) and
``worker.json`` (facts about its run).  No TensorFlow here: the parent must not
import the worker's legacy-Keras stack.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

INPUTS = "inputs.npz"
PROBS = "probs.npz"
WORKER_JSON = "worker.json"
TEST_SETS = {"mnist": "x_test", "ambiguous": "x_amb_test", "ood": "x_ood"}
ARRAYS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test", "x_amb_test", "x_ood")
NUM_WEIGHTS = 784 * 100 + 100 * 100 + 100 * 10  # the paper's bias-free 784-100-100-10 MLP


def write_inputs(path, data):
    """Writes the arrays of a `DirtyMNIST` that a worker needs (uncompressed: fast to read)."""
    arrays = {}
    for name in ARRAYS:
        a = np.asarray(getattr(data, name))
        arrays[name] = a.astype(np.float32 if name.startswith("x") else np.int64, copy=False)
    np.savez(path, **arrays)
    return path


def read_inputs(path):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: worker inputs not found")
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in ARRAYS if k not in z.files]
        if missing:
            raise ValueError(f"{path}: missing arrays {missing}")
        return {k: z[k] for k in ARRAYS}


def dedupe_runs(x):
    """(rows, index): ``x == rows[index]``, with runs of identical consecutive rows stored once.

    Ambiguous-MNIST test holds each image 10 times in a row (one row per label): predicting
    each image once and repeating its samples cuts the Monte-Carlo cost by 3x on Dirty-MNIST.
    """
    x = np.asarray(x)
    if len(x) == 0:
        return x, np.zeros(0, np.int64)
    new = np.r_[True, np.any(x[1:] != x[:-1], axis=tuple(range(1, x.ndim)))]
    return x[new], np.cumsum(new) - 1


def softmax(logits):
    z = np.asarray(logits, np.float64)
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


def write_outputs(out_dir, probs, info):
    np.savez(os.path.join(out_dir, PROBS), **{k: np.asarray(v, np.float32) for k, v in probs.items()})
    with open(os.path.join(out_dir, WORKER_JSON), "w") as f:
        json.dump(info, f, indent=1, sort_keys=True)


def read_outputs(out_dir):
    path = os.path.join(out_dir, PROBS)
    with np.load(path, allow_pickle=False) as z:
        probs = {k: z[k] for k in TEST_SETS}
    with open(os.path.join(out_dir, WORKER_JSON)) as f:
        info = json.load(f)
    return probs, info


def parse_args(argv, description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--out-dir", required=True, help="run folder holding inputs.npz; outputs go there")
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-samples", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--verbose", type=int, default=0)
    return p.parse_args(argv)


def check_legacy_keras(tf):
    """The worker's stack (tfmot / tfp.layers) needs tf.keras == tf_keras (Keras 2)."""
    if os.environ.get("TF_USE_LEGACY_KERAS") != "1":
        raise SystemExit("worker: TF_USE_LEGACY_KERAS=1 must be set in the environment before TensorFlow is imported")
    import tf_keras

    module = getattr(tf.keras, "__name__", "")
    if not module.startswith("tf_keras") or not tf_keras.__version__.startswith("2."):
        raise SystemExit(f"worker: tf.keras is {module!r}, expected tf_keras 2.x (got {tf_keras.__version__})")
    return tf_keras.__version__
