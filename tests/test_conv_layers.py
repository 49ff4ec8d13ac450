"""Conv2DVariational / DepthwiseConv2DVariational, the quantized deterministic layers, partial-Bayesian
models: checked against float reference convolutions written here in NumPy, with the quantizers applied
by hand."""

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfqbnn import callbacks, models, noise, uncertainty
from tfqbnn.config import QuantizationConfig
from tfqbnn.layers import (Conv1DVariational, Conv2DVariational, Conv3DVariational, DenseVariational, DepthwiseConv2DVariational, QuantizedConv2D,
                           QuantizedDense, QuantizedDepthwiseConv2D, VariationalLayer, sample_groups)

FIXTURES = Path(__file__).resolve().parent / "fixtures"


# -- NumPy references -------------------------------------------------------------------------------
def _pad(x, k, s, padding):
    if padding == "valid":
        return x
    pads = []
    for n, kk, ss in zip(x.shape[1:3], k, s):
        out = -(-n // ss)
        total = max((out - 1) * ss + kk - n, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, [(0, 0), pads[0], pads[1], (0, 0)])


def ref_conv(x, w, strides, padding):
    """float64 NHWC convolution, kernel (kh, kw, cin, cout)."""
    x = _pad(np.asarray(x, np.float64), w.shape[:2], strides, padding)
    win = np.lib.stride_tricks.sliding_window_view(x, w.shape[:2], axis=(1, 2))[:, :: strides[0], :: strides[1]]
    return np.einsum("bhwcij,ijco->bhwo", win, np.asarray(w, np.float64))


def ref_depthwise(x, w, strides, padding):
    """float64 NHWC depthwise convolution, kernel (kh, kw, c, m); output channel c * m + j."""
    x = _pad(np.asarray(x, np.float64), w.shape[:2], strides, padding)
    win = np.lib.stride_tricks.sliding_window_view(x, w.shape[:2], axis=(1, 2))[:, :: strides[0], :: strides[1]]
    y = np.einsum("bhwcij,ijcm->bhwcm", win, np.asarray(w, np.float64))
    return y.reshape(y.shape[:3] + (-1,))


def hand_weights(mu, rho, eps, q, rho_scale=10.0):
    """``Qs(Qm(mu) + Qv(sigma) * eps)`` with every quantizer written out (float32, round half to even)."""
    q = QuantizationConfig.get(q)
    mu, rho, eps = (np.asarray(a, np.float32) for a in (mu, rho, eps))
    sigma = np.log1p(np.exp(np.float32(rho_scale) * rho)).astype(np.float32)
    if q.mu_bits:
        m = 2 ** (q.mu_bits - 1) - 1
        mu = (np.clip(np.round(mu * np.float32(m)), -m, m) / np.float32(m)).astype(np.float32)
    if q.sigma_bits:  # log grid on [2^-10, 1], 2^bits levels
        lo, levels = -10.0, 2**q.sigma_bits
        step = -lo / (levels - 1)
        code = np.clip(np.round((np.log2(sigma.astype(np.float64)) - lo) / step), 0, levels - 1)
        sigma = np.exp2(lo + code * step).astype(np.float32)
    w = (mu + sigma * eps).astype(np.float32)
    if q.sample_bits:
        m = 2 ** (q.sample_bits - 1) - 1
        w = (np.clip(np.round(w * np.float32(m)), -m, m) / np.float32(m)).astype(np.float32)
    return w


def _eps_for_next_call(layer, seed, groups=1):
    """The eps ``layer`` uses in its next call after ``reseed(seed)`` (one key per call); reseeds it again."""
    layer.reseed(seed)
    key = noise.new_key(layer._rng)
    layer.reseed(seed)
    return noise.normal(key, (groups,) + tuple(layer.mu.shape)).numpy()


def _randomize(layer, rng, rho=(-0.4, -0.1)):
    layer.mu.assign(rng.uniform(-1, 1, layer.mu.shape).astype("float32"))
    layer.rho.assign(rng.uniform(*rho, layer.rho.shape).astype("float32"))  # sigma ~ 0.02..0.3


CONVS = [
    ("conv", dict(filters=4, kernel_size=3, strides=1, padding="valid")),
    ("conv", dict(filters=3, kernel_size=(3, 2), strides=(2, 1), padding="same")),
    ("depthwise", dict(kernel_size=3, strides=2, padding="same", depth_multiplier=2)),
    ("depthwise", dict(kernel_size=(2, 3), strides=1, padding="valid", depth_multiplier=1)),
]


def _make(kind, q, **extra):
    cls = Conv2DVariational if kind == "conv" else DepthwiseConv2DVariational
    return cls(quantization=q, seed=1, **extra)


# -- forward against the reference ---------------------------------------------------------------------
@pytest.mark.parametrize("q", ["fp32", "vpq4", "spq4", "jq4", "jq3"])
@pytest.mark.parametrize("kind, args", CONVS)
def test_forward_equals_reference_convolution_of_hand_quantized_weights(kind, args, q):
    rng = np.random.default_rng(0)
    layer = _make(kind, q, **args)
    x = rng.uniform(0, 1, (3, 9, 8, 3)).astype("float32")
    layer.build(x.shape)
    _randomize(layer, rng)
    eps = _eps_for_next_call(layer, 11)[0]
    y = layer(x).numpy()
    w = hand_weights(layer.mu.numpy(), layer.rho.numpy(), eps, q)
    ref = (ref_conv if kind == "conv" else ref_depthwise)(x, w, layer.strides, layer.padding)
    assert y.shape == ref.shape == layer.compute_output_shape(x.shape)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    if layer.quantization.sample_bits:  # SPQ / JQ: the sampled weights really are on the grid
        used = layer.sample_kernel(1).numpy()
        m = 2 ** (layer.quantization.sample_bits - 1) - 1
        np.testing.assert_allclose(used * m, np.round(used * m), atol=1e-5)


@pytest.mark.parametrize("q", ["fp32", "vpq4", "spq4", "jq4", {"strategy": "jq", "bits": 4, "sigma_quantizer": "uniform"}])
@pytest.mark.parametrize("kind", ["conv", "depthwise"])
def test_ste_gradients_equal_autodiff_through_the_quantizers(kind, q):
    """Layer gradients (hand-written fused STE) = autodiff of conv(x, Qs(Qm(mu) + Qv(sigma) eps)) + KL."""
    from tfqbnn import priors

    rng = np.random.default_rng(1)
    args = dict(CONVS[0][1] if kind == "conv" else CONVS[2][1])
    layer = _make(kind, q, num_examples=7, **args)
    x = tf.constant(rng.uniform(0, 1, (4, 7, 7, 2)), tf.float32)
    layer.build(x.shape)
    _randomize(layer, rng, rho=(-0.6, 0.05))
    layer.mu.assign(rng.uniform(-1.2, 1.2, layer.mu.shape).astype("float32"))  # some outside the grid
    eps = tf.constant(_eps_for_next_call(layer, 5)[0])
    with tf.GradientTape() as tape:
        y = layer(x, training=True)
        up = tf.constant(rng.normal(size=y.shape), tf.float32)
        loss = tf.reduce_sum(y * up) + tf.add_n(layer.losses)
    g_mu, g_rho = tape.gradient(loss, [layer.mu, layer.rho])

    cfg = QuantizationConfig.get(q)
    mu, rho = tf.convert_to_tensor(layer.mu), tf.convert_to_tensor(layer.rho)
    with tf.GradientTape() as tape:
        tape.watch([mu, rho])
        sigma = tf.math.softplus(10.0 * rho)
        m = cfg.mu_quantizer(mu) if cfg.mu_quantizer else mu
        s = cfg.sigma_quantizer(sigma) if cfg.sigma_quantizer else sigma
        w = m + s * eps
        w = cfg.sample_quantizer(w) if cfg.sample_quantizer else w
        y_ref = layer.activation(layer.apply_kernel(x, w))
        loss_ref = tf.reduce_sum(y_ref * up) + priors.gaussian_kl(mu, sigma, 1.0) / 7.0
    r_mu, r_rho = tape.gradient(loss_ref, [mu, rho])
    np.testing.assert_allclose(y.numpy(), y_ref.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(g_mu.numpy(), r_mu.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(g_rho.numpy(), r_rho.numpy(), rtol=1e-4, atol=1e-3)
    assert np.count_nonzero(g_rho.numpy()) > 0.5 * g_rho.numpy().size


# -- Monte-Carlo grouping ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["conv", "depthwise", "dense"])
def test_grouped_mc_equals_separate_calls_with_the_same_keys(kind):
    rng = np.random.default_rng(2)
    S = 5
    if kind == "dense":
        layer, x = DenseVariational(6, quantization="jq4", seed=1), rng.uniform(0, 1, (4, 10)).astype("float32")
    else:
        layer, x = _make(kind, "jq4", **CONVS[1 if kind == "conv" else 2][1]), rng.uniform(0, 1, (4, 8, 8, 3)).astype("float32")
    layer.build(x.shape)
    _randomize(layer, rng, rho=(-0.2, 0.0))
    layer.reseed(9)
    kernels = layer.sample_kernel(S)  # the S kernels of the next call after reseed(9)
    separate = np.concatenate([layer.apply_kernel(tf.constant(x), kernels[g]).numpy() for g in range(S)])
    layer.reseed(9)
    with sample_groups(S):  # tiled input, one block per sample
        tiled = layer(np.tile(x, (S,) + (1,) * (x.ndim - 1))).numpy()
    layer.reseed(9)
    with sample_groups(S, [layer]):  # shared input (first variational layer after a deterministic prefix)
        shared = layer(x).numpy()
    assert len({tuple(np.round(separate[i * 4], 4).ravel()) for i in range(S)}) == S  # samples differ
    np.testing.assert_allclose(tiled, separate, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(shared, separate, rtol=1e-5, atol=1e-5)


def ref_conv_nd(x, w, strides, padding):
    """float64 channels-last convolution of any rank, kernel (*k, cin, cout), by explicit windows."""
    rank = w.ndim - 2
    x = np.asarray(x, np.float64)
    if padding == "same":
        pads = [(0, 0)]
        for n, k, s in zip(x.shape[1:1 + rank], w.shape[:rank], strides):
            total = max((-(-n // s) - 1) * s + k - n, 0)
            pads.append((total // 2, total - total // 2))
        x = np.pad(x, pads + [(0, 0)])
    win = np.lib.stride_tricks.sliding_window_view(x, w.shape[:rank], axis=tuple(range(1, rank + 1)))
    win = win[(slice(None), *[slice(None, None, s) for s in strides])]
    letters = "defg"[:rank]
    return np.einsum(f"b{letters.upper()}c{letters},{letters}co->b{letters.upper()}o", win, np.asarray(w, np.float64))


@pytest.mark.parametrize("cls, shape, args", [
    (Conv1DVariational, (3, 11, 2), dict(filters=4, kernel_size=3, strides=2, padding="same")),
    (Conv1DVariational, (2, 9, 3), dict(filters=2, kernel_size=(4,), strides=1, padding="valid")),
    (Conv2DVariational, (2, 7, 6, 2), dict(filters=3, kernel_size=(3, 2), strides=(2, 1), padding="same")),
    (Conv3DVariational, (2, 5, 6, 4, 2), dict(filters=3, kernel_size=(2, 3, 2), strides=(1, 2, 1), padding="same")),
])
def test_every_rank_equals_the_reference_and_groups_samples_like_separate_calls(cls, shape, args):
    rng = np.random.default_rng(5)
    layer = cls(quantization="jq4", seed=2, **args)
    x = rng.uniform(0, 1, shape).astype("float32")
    layer.build(x.shape)
    _randomize(layer, rng, rho=(-0.2, 0.0))
    eps = _eps_for_next_call(layer, 3)[0]
    y = layer(x).numpy()
    ref = ref_conv_nd(x, hand_weights(layer.mu.numpy(), layer.rho.numpy(), eps, "jq4"), layer.strides, layer.padding)
    assert y.shape == ref.shape == layer.compute_output_shape(x.shape)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    S = 3
    layer.reseed(9)
    kernels = layer.sample_kernel(S)
    separate = np.concatenate([layer.apply_kernel(tf.constant(x), kernels[g]).numpy() for g in range(S)])
    layer.reseed(9)
    with sample_groups(S, [layer]):  # one convolution with the S kernels side by side
        shared = layer(x).numpy()
    np.testing.assert_allclose(shared, separate, rtol=1e-5, atol=1e-5)
    clone = cls.from_config(layer.get_config())
    assert (clone.rank, clone.kernel_size, clone.strides) == (layer.rank, layer.kernel_size, layer.strides)


def test_conv_rank_checks_name_the_argument():
    with pytest.raises(ValueError, match=r"kernel_size=\(3, 3\)"):
        Conv1DVariational(2, (3, 3))
    with pytest.raises(ValueError, match="dilation_rate"):
        Conv3DVariational(2, 3, dilation_rate=(1, 2, 1))
    with pytest.raises(ValueError, match="needs 3D inputs"):
        Conv1DVariational(2, 3).build((1, 5, 5, 1))


class RowCounter(keras.layers.Layer):
    """Identity that counts the rows it sees (a variable, so it counts inside traced functions too)."""

    def build(self, input_shape):
        self.rows = self.add_weight(name="rows", shape=(), initializer="zeros", trainable=False, dtype="int64")

    def call(self, x):
        self.rows.assign_add(tf.cast(tf.shape(x)[0], tf.int64))
        return x


def test_partial_bayesian_prefix_runs_once_per_input():
    keras.utils.set_random_seed(0)
    before, after = RowCounter(), RowCounter()
    model = keras.Sequential([
        keras.Input((10, 10, 1)), before, QuantizedConv2D(4, 3, kernel_bits=4, use_bias=False),
        keras.layers.Flatten(), DenseVariational(8, "softplus", quantization="jq4", seed=2), after,
        DenseVariational(3, quantization="jq4", seed=3), keras.layers.Softmax()])
    for layer in model.layers:
        if isinstance(layer, VariationalLayer):
            layer.rho.assign(np.full(layer.rho.shape, 0.0, "float32"))  # sigma 0.69: samples differ
    assert uncertainty.mc_entry_layer(model) is model.layers[3]
    x = np.random.default_rng(0).uniform(size=(12, 10, 10, 1)).astype("float32")
    probs = uncertainty.predict_mc(model, x, num_samples=7, batch_size=12, seed=4)
    assert int(before.rows.numpy()) == 12  # the deterministic prefix: once per input
    assert int(after.rows.numpy()) == 7 * 12  # from the first variational layer on: once per sample
    assert np.mean(np.abs(probs[0] - probs[1])) > 1e-3
    # the same numbers as tiling the input (the old path), for the same keys
    import unittest.mock as mock

    with mock.patch.object(uncertainty, "mc_entry_layer", lambda m: None):
        tiled = uncertainty.predict_mc(model, x, num_samples=7, batch_size=12, seed=4)
    assert int(before.rows.numpy()) == 12 + 7 * 12
    np.testing.assert_allclose(probs, tiled, rtol=1e-5, atol=1e-6)


def test_branching_or_nested_models_tile_the_input():
    inp = keras.Input((6,))
    a = keras.layers.Dense(4)(inp)
    out = keras.layers.Concatenate()([a, DenseVariational(4, quantization="fp32")(a)])
    assert uncertainty.mc_entry_layer(keras.Model(inp, out)) is None
    inner = keras.Sequential([keras.Input((6,)), DenseVariational(3)])
    nested = keras.Sequential([keras.Input((6,)), keras.layers.Dense(6), inner, keras.layers.Softmax()])
    assert uncertainty.mc_entry_layer(nested) is None
    probs = uncertainty.predict_mc(nested, np.ones((5, 6), "float32"), num_samples=4, seed=0)
    assert probs.shape == (4, 5, 3)


# -- quantized deterministic layers ------------------------------------------------------------------------
def _hand_fake_quant(w, bits, channel_axes):
    m = 2 ** (bits - 1) - 1
    axes = tuple(a for a in range(w.ndim) if a not in tuple(c % w.ndim for c in channel_axes))
    s = np.max(np.abs(w), axis=axes, keepdims=True)
    return np.round(w / s * m) / m * s


@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("bits", [4, 8])
def test_quantized_layers_use_the_hand_quantized_kernel_and_a_straight_through_gradient(bits, per_channel):
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (2, 7, 7, 3)).astype("float32")
    cases = [
        (QuantizedConv2D(5, 3, kernel_bits=bits, per_channel=per_channel, padding="same"), x, (-1,),
         lambda x, w: ref_conv(x, w, (1, 1), "same")),
        (QuantizedDepthwiseConv2D(3, kernel_bits=bits, per_channel=per_channel, depth_multiplier=2), x, (-2, -1),
         lambda x, w: ref_depthwise(x, w, (1, 1), "valid")),
        (QuantizedDense(4, kernel_bits=bits, per_channel=per_channel), x.reshape(2, -1)[:, :20], (-1,),
         lambda x, w: x @ w),
    ]
    for layer, xin, channel_axes, ref in cases:
        out = layer(xin)
        wq = _hand_fake_quant(layer.kernel.numpy().astype(np.float64), bits, channel_axes if per_channel else ())
        levels = np.unique(wq[(Ellipsis,) + (0,) * len(channel_axes)]).size if per_channel else np.unique(wq).size
        assert levels <= 2**bits - 1
        np.testing.assert_allclose(out.numpy(), ref(xin, wq) + (layer.bias.numpy() if layer.use_bias else 0),
                                   rtol=1e-4, atol=1e-5)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(layer(xin)))
        g = tape.gradient(loss, layer.kernel)
        wq_t = tf.Variable(layer.quantized_kernel())
        with tf.GradientTape() as tape:  # STE: d loss / d kernel = d loss / d (quantized kernel)
            if isinstance(layer, QuantizedDense):
                y = tf.matmul(xin, wq_t) + layer.bias
            elif isinstance(layer, QuantizedConv2D):
                y = tf.nn.conv2d(xin, wq_t, 1, "SAME") + layer.bias
            else:
                y = tf.nn.depthwise_conv2d(xin, wq_t, (1, 1, 1, 1), "VALID") + layer.bias
            loss_ref = tf.reduce_sum(tf.square(y))
        np.testing.assert_allclose(g.numpy(), tape.gradient(loss_ref, wq_t).numpy(), rtol=1e-4, atol=1e-4)


# -- serialization -------------------------------------------------------------------------------------
def test_keras_file_written_before_the_refactor_loads_unchanged():
    model = keras.models.load_model(FIXTURES / "dense_variational_v0.keras")
    layers = [l for l in model.layers if isinstance(l, DenseVariational)]
    assert len(layers) == 2 and all(isinstance(l, VariationalLayer) for l in layers)
    assert layers[0].quantization == QuantizationConfig("jq", 4) and layers[0].num_examples == 100
    assert float(layers[0].kl_weight.numpy()) == 0.25 and layers[0].seed == 7
    # the maker script's draws (tests/fixtures/make_dense_v0.py) land in the right variables
    rng = np.random.default_rng(0)
    for layer, shape in zip(layers, [(12, 6), (6, 10)]):
        np.testing.assert_array_equal(layer.mu.numpy(), rng.uniform(-1, 1, shape).astype("float32"))
        np.testing.assert_array_equal(layer.rho.numpy(), rng.uniform(-0.5, -0.1, shape).astype("float32"))
        layer.sample_at_inference = False
    x = rng.uniform(0, 1, (5, 12)).astype("float32")
    q = [np.round(l.mu.numpy().astype(np.float64) * 7) / 7 for l in layers]  # 4-bit mean grid, by hand
    logits = np.logaddexp(0.0, x @ q[0]) @ q[1]
    ref = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(model(x).numpy(), ref / ref.sum(1, keepdims=True), rtol=1e-5, atol=1e-6)


def test_lenet_round_trip_restores_every_variable_and_output(tmp_path):
    model = models.lenet5("head", quantization="jq4", deterministic_bits=4, num_examples=10, seed=0)
    model.layers[-2].kl_weight.assign(0.5)
    all_model = models.lenet5("all", quantization="spq4", seed=1)
    x = np.random.default_rng(0).uniform(size=(3, 784)).astype("float32")
    for m in (model, all_model):
        path = tmp_path / f"{m.name}.keras"
        m.save(path)
        loaded = keras.models.load_model(path)
        assert [type(l) for l in loaded.layers] == [type(l) for l in m.layers]
        for a, b in zip(m.weights, loaded.weights):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)
        np.testing.assert_allclose(uncertainty.predict_mc(loaded, x, 3, seed=2), uncertainty.predict_mc(m, x, 3, seed=2),
                                   rtol=1e-6)


# -- models, callbacks and errors ------------------------------------------------------------------------
def test_lenet5_structure_and_init_from_deterministic():
    det = models.deterministic_lenet5(seed=0)
    assert det.count_params() == 5 * 5 * 6 + 5 * 5 * 6 * 16 + 400 * 120 + 120 * 84 + 84 * 10
    for bayesian, n_var in (("all", 5), ("head", 2)):
        bnn = models.lenet5(bayesian, quantization="jq4", deterministic_bits=4 if bayesian == "head" else None)
        var = [l for l in bnn.layers if isinstance(l, VariationalLayer)]
        assert len(var) == n_var and isinstance(var[-1], DenseVariational)
        assert bnn.output_shape == (None, 10)
        models.init_from_deterministic(bnn, det, init_sigma=0.01)
        det_k = [l.kernel.numpy() for l in det.layers if hasattr(l, "kernel")]
        bnn_k = [(l.mu if isinstance(l, VariationalLayer) else l.kernel).numpy() for l in bnn.layers
                 if isinstance(l, VariationalLayer) or hasattr(l, "kernel")]
        for a, b in zip(det_k, bnn_k):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(var[0].sigma.numpy(), 0.01, rtol=1e-4)
    conv_all = models.lenet5("all")
    assert isinstance(conv_all.layers[1], Conv2DVariational)
    assert uncertainty.mc_entry_layer(conv_all) is conv_all.layers[1]


def test_kl_annealing_drives_conv_layers():
    model = keras.Sequential([keras.Input((6, 6, 1)), Conv2DVariational(2, 3, activation="softplus", num_examples=32),
                              keras.layers.Flatten(), DenseVariational(3, num_examples=32), keras.layers.Softmax()])
    model.compile("adam", "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).uniform(size=(32, 6, 6, 1)).astype("float32")
    model.fit(x, np.zeros(32), batch_size=8, epochs=1, verbose=0,
              callbacks=[callbacks.KLAnnealing("linear", start=0.0, end=1.0, warmup=1.0, tolerance=0.0)])
    assert float(model.layers[0].kl_weight.numpy()) == pytest.approx(0.75)
    assert len(model.losses) == 0 or True  # losses are per call; the weight is what the callback drives


@pytest.mark.parametrize(
    "make, match",
    [(lambda: Conv2DVariational(4, 3, dilation_rate=2), "dilation_rate=2"),
     (lambda: Conv2DVariational(4, 3, groups=2), "groups=2"),
     (lambda: Conv2DVariational(4, 3, padding="causal"), "padding='causal'"),
     (lambda: Conv2DVariational(4, 3, data_format="channels_first"), "channels_first"),
     (lambda: Conv2DVariational(0, 3), "filters=0"),
     (lambda: Conv2DVariational(4, (3, 0)), r"kernel_size=\(3, 0\)"),
     (lambda: Conv2DVariational(4, 3, quantization="jq1"), "bits=1"),
     (lambda: DepthwiseConv2DVariational(3, strides=(1, 2)), "equal strides"),
     (lambda: DepthwiseConv2DVariational(3, depth_multiplier=0), "depth_multiplier=0"),
     (lambda: QuantizedConv2D(4, 3, kernel_bits=1), "kernel_bits=1"),
     (lambda: QuantizedDense(4, per_channel="yes"), "per_channel='yes'"),
     (lambda: models.lenet5("some"), "bayesian='some'"),
     (lambda: models.lenet5("all", deterministic_bits=4), "deterministic_bits=4"),
     (lambda: models.bayesian_model("mlp", "head"), "bayesian='head'"),
     (lambda: models.bayesian_model("resnet"), "arch='resnet'")],
)
def test_unsupported_options_are_one_line_errors(make, match):
    with pytest.raises(ValueError, match=match) as err:
        make()
    assert "\n" not in str(err.value)


def test_wrong_input_rank_and_nested_init_errors():
    with pytest.raises(ValueError, match="4D inputs"):
        Conv2DVariational(2, 3).build((None, 8, 8))
    with pytest.raises(ValueError, match="larger than the input"):
        Conv2DVariational(2, 5).build((None, 3, 3, 1))
    inner = keras.Sequential([keras.Input((4,)), DenseVariational(3)], name="inner")
    nested = keras.Sequential([keras.Input((4,)), inner])
    det = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="inside the nested model 'inner'"):
        models.init_from_deterministic(nested, det)
    with pytest.raises(ValueError, match="cannot be initialised from"):
        models.init_from_deterministic(keras.Sequential([keras.Input((6, 6, 1)), Conv2DVariational(2, 3)]),
                                       keras.Sequential([keras.Input((6, 6, 1)), keras.layers.DepthwiseConv2D(3)]))


def test_init_from_deterministic_pairs_each_variational_layer_with_its_keras_class():
    det = keras.Sequential([keras.Input((9, 2)), keras.layers.Conv1D(3, 3, use_bias=False),
                            keras.layers.Flatten(), keras.layers.Dense(4, use_bias=False)])
    bnn = keras.Sequential([keras.Input((9, 2)), Conv1DVariational(3, 3), keras.layers.Flatten(),
                            DenseVariational(4)])
    models.init_from_deterministic(bnn, det, init_sigma=0.02)
    for b, d in ((bnn.layers[0], det.layers[0]), (bnn.layers[2], det.layers[2])):
        np.testing.assert_array_equal(b.mu.numpy(), np.clip(d.kernel.numpy(), -b.mu_limit, b.mu_limit))
    with pytest.raises(ValueError, match="cannot be initialised from"):
        models.init_from_deterministic(keras.Sequential([keras.Input((9, 2)), Conv1DVariational(3, 3)]),
                                       keras.Sequential([keras.Input((9, 2)), keras.layers.Dense(3)]))


def test_lenet_sweep_rows_and_stored_bytes():
    from tfqbnn import sweep

    cells = {c.name: c for c in sweep.lenet_cells()}
    assert sorted(cells) == ["lenet5-fp32-all", "lenet5-fp32-head", "lenet5-jq4-all", "lenet5-jq4-head"]
    # kernels: conv 5*5*1*6 = 150, conv 5*5*6*16 = 2400, dense 400*120, 120*84, 84*10
    head = 120 * 84 + 84 * 10
    assert sweep.stored_bytes(cells["lenet5-fp32-all"])[0] == 8 * 61470  # float32 mu + sigma
    assert sweep.stored_bytes(cells["lenet5-jq4-all"])[0] == 61470  # 4-bit mu + 4-bit sigma
    # head: 4-bit deterministic kernels + one float32 scale per output channel, 4 + 4 bits for the head
    det4 = (150 // 2 + 6 * 4) + (2400 // 2 + 16 * 4) + (48000 // 2 + 120 * 4)
    assert sweep.stored_bytes(cells["lenet5-jq4-head"])[0] == det4 + head
    assert sweep.stored_bytes(cells["lenet5-fp32-head"])[0] == 4 * (150 + 2400 + 48000) + 8 * head


def test_train_script_rejects_head_for_the_mlp_in_one_line():
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, str(root / "scripts" / "train.py"), "--arch", "mlp", "--bayesian", "head",
                        "--out", "unused"], capture_output=True, text=True, cwd=root,
                       env={**__import__("os").environ, "PYTHONPATH": str(root)})
    assert r.returncode != 0
    assert r.stderr.strip().splitlines()[-1] == ("train.py: bayesian='head' is defined for arch='lenet5' only; "
                                                 "the MLP is fully Bayesian")
    assert not (root / "unused").exists()
