"""Baselines (tfqbnn.baselines): det in process; qat4 / flipout in a tf_keras child process."""

import json
import os
import sys

import numpy as np
import pytest

from tfqbnn.baselines import run_baseline
from tfqbnn.datasets import DirtyMNIST
from tfqbnn.datasets.mnist import load_idx_uint8
from tfqbnn.evaluation import metrics_from_probs

NUM_WEIGHTS = 784 * 100 + 100 * 100 + 100 * 10


@pytest.fixture(scope="module")
def tiny():
    """Real MNIST / Fashion-MNIST slices; the "ambiguous" set is pixel-averaged digit pairs, each image twice
    in a row like Ambiguous-MNIST test (one row per label)."""
    x, y = load_idx_uint8("mnist", "train")
    f, fy = load_idx_uint8("fashion_mnist", "test")
    x = x.reshape(-1, 784).astype(np.float32) / 255
    f = f.reshape(-1, 784).astype(np.float32) / 255
    amb = np.repeat((x[4000:4200] + x[4200:4400]) / 2, 2, axis=0)
    return DirtyMNIST(
        x_train=x[:2000], y_train=y[:2000].astype(np.int64), x_val=x[2000:2400], y_val=y[2000:2400].astype(np.int64),
        x_test=x[3000:3600], y_test=y[3000:3600].astype(np.int64), x_amb_test=amb, y_amb_test=y[4000:4400],
        x_ood=f[:400], y_ood=fy[:400], source={"test": "tiny"},
    )


def _probs(out_dir):
    with np.load(os.path.join(out_dir, "probs.npz")) as z:
        return {k: z[k] for k in ("mnist", "ambiguous", "ood")}


def _check_common(m, out_dir, data, num_samples):
    probs = _probs(out_dir)
    for name, x in [("mnist", data.x_test), ("ambiguous", data.x_amb_test), ("ood", data.x_ood)]:
        p = probs[name]
        assert p.shape == (num_samples, len(x), 10)
        assert np.all(p >= 0) and np.allclose(p.sum(-1), 1.0, atol=1e-5)
    # Learnt something real from 2000 images (chance is 0.1).
    assert m["accuracy"] > 0.7
    # The metrics file holds the common evaluation's numbers for these probabilities.
    with open(os.path.join(out_dir, "metrics.json")) as f:
        saved = json.load(f)
    expected, per_image = metrics_from_probs(probs, data.y_test)
    for k, v in expected.items():
        assert saved[k] == pytest.approx(v, abs=1e-6), k
    with np.load(os.path.join(out_dir, "per_image.npz")) as z:
        assert set(z.files) == set(per_image)
    return probs, per_image


def test_det_single_pass_entropy_only(tiny, tmp_path):
    m = run_baseline("det", tiny, tmp_path, epochs=3, seed=0, keep_files=True)
    probs, per_image = _check_common(m, tmp_path, tiny, 1)
    assert m["baseline"] == "det" and m["num_samples"] == 1
    for s in ("mnist", "ambiguous", "ood"):
        assert np.all(per_image[f"{s}_epistemic"] == 0)
    assert m["param_bytes"] == 4 * NUM_WEIGHTS
    # Averaged digit pairs are more uncertain than clean digits.
    assert m["auroc_aleatoric"] > 0.6


@pytest.mark.slow
def test_qat4_worker_uses_4bit_weights(tiny, tmp_path):
    m = run_baseline("qat4", tiny, tmp_path, epochs=3, seed=0, keep_files=True)
    _check_common(m, tmp_path, tiny, 1)
    assert m["baseline"] == "qat4" and m["max_distinct_weight_values"] <= 15
    # Independent of the worker's own count: its inference kernels are k * scale, |k| <= 7, one scale per tensor.
    with np.load(tmp_path / "quantized_kernels.npz") as z:
        kernels = {k: z[k] for k in z.files}
    assert sorted(kernels) == ["dense_0", "dense_1", "dense_2"]
    for w in kernels.values():
        levels = np.unique(w)
        assert 3 <= len(levels) <= 15
        step = np.abs(w).max() / 7
        codes = w / step
        assert np.allclose(codes, np.round(codes), atol=1e-3) and np.abs(np.round(codes)).max() == 7
    assert sum(w.size for w in kernels.values()) == NUM_WEIGHTS
    assert m["param_bytes"] == NUM_WEIGHTS // 2 + 3 * 4
    assert (tmp_path / "inputs.npz").exists()  # keep_files
    _assert_parent_still_keras3()


@pytest.mark.slow
def test_flipout_worker_is_bayesian(tiny, tmp_path):
    m = run_baseline("flipout", tiny, tmp_path, epochs=3, seed=0, num_samples=8)
    assert not (tmp_path / "inputs.npz").exists() and not (tmp_path / "probs.npz").exists()
    assert m["baseline"] == "flipout" and m["num_samples"] == 8 and m["accuracy"] > 0.7
    with np.load(tmp_path / "per_image.npz") as z:
        for s in ("mnist", "ambiguous", "ood"):
            assert z[f"{s}_epistemic"].mean() > 0
            assert np.all(z[f"{s}_epistemic"] >= -1e-6)
    assert m["mean_epistemic_ood"] > 0
    assert m["param_bytes"] == 2 * 4 * NUM_WEIGHTS
    _assert_parent_still_keras3()


def _assert_parent_still_keras3():
    import keras
    import tensorflow as tf

    assert keras.__version__.startswith("3")
    assert os.environ.get("TF_USE_LEGACY_KERAS") != "1"
    assert "tensorflow_model_optimization" not in sys.modules
    # (tfp itself may be loaded by other tests of this process: what matters is that Keras stays Keras 3)
    assert tf.keras.__name__.startswith("keras")  # not tf_keras
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("sgd", "mse")
    model.fit(np.ones((4, 3), np.float32), np.zeros((4, 2), np.float32), verbose=0)


def test_rejects_bad_arguments(tiny, tmp_path):
    with pytest.raises(ValueError, match="Unknown baseline 'bnn'"):
        run_baseline("bnn", tiny, tmp_path, epochs=1)
    with pytest.raises(ValueError, match="epochs=0"):
        run_baseline("det", tiny, tmp_path, epochs=0)
    with pytest.raises(ValueError, match="num_samples=1.5"):
        run_baseline("flipout", tiny, tmp_path, epochs=1, num_samples=1.5)


def test_worker_failure_names_log(tiny, tmp_path):
    # A worker that dies (here: no inputs.npz in its folder) raises an error naming its log.
    from tfqbnn.baselines import run_worker

    with pytest.raises(RuntimeError, match="worker exited with code .*worker.log"):
        run_worker("flipout", tmp_path, epochs=1)


def test_dedupe_runs_restores_rows():
    from tfqbnn.baselines._worker_io import dedupe_runs

    rng = np.random.default_rng(0)
    base = rng.random((5, 4)).astype(np.float32)
    x = np.concatenate([np.repeat(base[:2], 3, axis=0), base[2:3], base[:1], np.repeat(base[3:], 2, axis=0)])
    rows, index = dedupe_runs(x)
    assert len(rows) == 6  # runs: b0 b1 b2 b0 b3 b4 (a repeat that is not adjacent is kept)
    np.testing.assert_array_equal(rows[index], x)
    assert len(dedupe_runs(x[:0])[0]) == 0
