"""Issue 10, Keras side: no silent wrong result from the layer, the callback or the uncertainty API."""

import subprocess
import sys
import textwrap
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfqbnn import callbacks, models, uncertainty
from tfqbnn.layers import DenseVariational
from tfqbnn.uncertainty import decompose, predict_mc


def test_training_without_num_examples_warns_once_with_the_fix():
    model = keras.Sequential([keras.Input((6,)), DenseVariational(3, quantization="fp32", seed=0)])
    model.compile("adam", "mse")
    x, y = np.zeros((32, 6), "float32"), np.zeros((32, 3), "float32")
    with pytest.warns(UserWarning, match=r"num_examples.*num_examples=len\(x_train\)") as rec:
        model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert sum("num_examples" in str(w.message) for w in rec) == 1
    # inference, and a layer that has num_examples, stay quiet
    quiet = keras.Sequential([keras.Input((6,)), DenseVariational(3, num_examples=32, seed=0)])
    quiet.compile("adam", "mse")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet.fit(x, y, batch_size=8, verbose=0)
        model.predict(x, verbose=0)


def test_layers_with_the_same_seed_draw_independent_eps():
    inp = keras.Input((50,))
    a = DenseVariational(50, seed=7, init_sigma=1.0, name="a")
    b = DenseVariational(50, seed=7, init_sigma=1.0, name="b")
    keras.Model(inp, [a(inp), b(inp)])
    for layer in (a, b):
        layer.mu.assign(np.zeros((50, 50), "float32"))
    wa = a.sample_weights().numpy().ravel()
    wb = b.sample_weights().numpy().ravel()
    assert abs(np.corrcoef(wa, wb)[0, 1]) < 0.05
    # reseeding both with one seed keeps them independent too, and stays reproducible
    a.reseed(3), b.reseed(3)
    wa3, wb3 = a.sample_weights().numpy().ravel(), b.sample_weights().numpy().ravel()
    assert abs(np.corrcoef(wa3, wb3)[0, 1]) < 0.05
    a.reseed(3)
    np.testing.assert_array_equal(a.sample_weights().numpy().ravel(), wa3)


def test_mixed_float16_trains_with_the_kl_in_float32():
    prev = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        layer = DenseVariational(4, quantization="jq4", num_examples=64, seed=0)
        model = keras.Sequential([keras.Input((6,)), layer, keras.layers.Activation("softmax", dtype="float32")])
        model.compile("adam", "sparse_categorical_crossentropy")
        x = np.random.default_rng(0).uniform(size=(64, 6)).astype("float32")
        hist = model.fit(x, np.zeros(64), batch_size=16, epochs=2, verbose=0)
        assert np.all(np.isfinite(hist.history["loss"]))
        assert layer.mu.dtype == "float32" and layer(x[:2]).dtype == "float16"
        # the KL term is added in float32 (a float16 KL of a large layer overflows past 65504)
        with tf.GradientTape():
            layer(x[:2], training=True)
        assert all(loss.dtype == tf.float32 for loss in layer.losses)
    finally:
        keras.mixed_precision.set_dtype_policy(prev)


def _filtered_dataset(n=64, batch=8):
    x = np.random.default_rng(0).uniform(size=(n, 784)).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((x, np.zeros(n))).filter(lambda a, b: True).batch(batch)
    assert ds.cardinality() == tf.data.UNKNOWN_CARDINALITY
    return ds


def test_annealing_with_unknown_steps_fails_loudly_or_uses_total_steps():
    model = models.mlp(hidden=(8,), quantization="fp32", num_examples=64)
    model.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="total_steps"):
        model.fit(_filtered_dataset(), epochs=2, verbose=0, callbacks=[callbacks.KLAnnealing(warmup=1.0)])
    seen = []

    class Spy(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(float(model.layers[0].kl_weight.numpy()))

    model.fit(_filtered_dataset(), epochs=2, verbose=0,
              callbacks=[callbacks.KLAnnealing(warmup=1.0, total_steps=16, tolerance=0.0), Spy()])
    assert seen == pytest.approx([s / 16 for s in range(16)])


def test_annealing_drives_a_lazily_built_subclassed_model():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.d1 = DenseVariational(8, "softplus", num_examples=64, seed=0)
            self.d2 = DenseVariational(10, num_examples=64, seed=1)

        def call(self, x):
            return keras.ops.softmax(self.d2(self.d1(x)))

    model = Net()
    model.compile("adam", "sparse_categorical_crossentropy")
    seen = []

    class Spy(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append((float(model.d1.kl_weight.numpy()), float(model.d2.kl_weight.numpy())))

    x = np.random.default_rng(0).uniform(size=(64, 784)).astype("float32")
    model.fit(x, np.zeros(64), batch_size=8, epochs=1, verbose=0,
              callbacks=[callbacks.KLAnnealing(warmup=1.0, tolerance=0.0), Spy()])
    assert seen == [(s / 8, s / 8) for s in range(8)]


def test_predict_mc_rejects_values_that_overflow_float32():
    model = models.mlp(hidden=(8,), quantization="fp32")
    x = np.zeros((2, 784), np.float64)
    x[0, 5] = 1e300  # finite in float64, inf once cast to the model's float32
    with pytest.raises(ValueError, match="non-finite"):
        predict_mc(model, x, num_samples=2)


def test_predict_mc_chunks_over_samples_with_the_same_result():
    model = models.mlp(hidden=(16,), quantization="jq4", seed=0)
    for layer in model.layers[:-1]:
        layer.rho.assign(np.full(layer.rho.shape, 0.05, "float32"))
    x = np.random.default_rng(0).uniform(size=(5, 784)).astype("float32")
    whole = predict_mc(model, x, num_samples=12, seed=4)
    chunked = predict_mc(model, x, num_samples=12, seed=4, max_samples_per_call=5)
    assert chunked.shape == (12, 5, 10)
    # each chunk takes fresh keys, so the draws differ, but the distribution is the same kind of thing
    np.testing.assert_allclose(chunked.sum(-1), 1.0, rtol=1e-5)
    assert np.mean(np.abs(chunked[0] - chunked[7])) > 1e-3
    np.testing.assert_array_equal(chunked, predict_mc(model, x, num_samples=12, seed=4, max_samples_per_call=5))
    assert whole.shape == chunked.shape
    with pytest.raises(ValueError, match="max_samples_per_call=0"):
        predict_mc(model, x, num_samples=3, max_samples_per_call=0)


def test_predict_mc_memory_is_bounded_in_the_number_of_samples():
    """S = 3000 on one image grew RSS by 1048 MB before chunking (linear in S); now bounded by the budget."""
    code = textwrap.dedent("""
        import resource, numpy as np
        from tfqbnn import models, predict_mc
        model = models.mlp(quantization="jq4", seed=0)
        x = np.zeros((1, 784), "float32")
        predict_mc(model, x, num_samples=2)
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        p = predict_mc(model, x, num_samples=3000)
        assert p.shape == (3000, 1, 10)
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    grown_mb = int(out.stdout.split()[-1])
    assert grown_mb < 200, f"predict_mc(S=3000) grew RSS by {grown_mb} MB"


@pytest.mark.parametrize("bad, match", [
    (np.full((2, 3, 4), 0.5), "sum to 1"),
    (np.array([[[1.5, -0.5]]]), "negative"),
    (np.array([[[np.nan, 1.0]]]), "non-finite"),
])
def test_decompose_rejects_non_probabilities(bad, match):
    with pytest.raises(ValueError, match=match):
        decompose(bad)


def test_decompose_entropies_are_never_negative_for_valid_input():
    p = np.random.default_rng(0).dirichlet(np.full(10, 0.05), size=(30, 50))
    u = uncertainty.decompose(p)
    for k in ("predictive_entropy", "aleatoric", "epistemic"):
        assert np.all(u[k] >= 0)
