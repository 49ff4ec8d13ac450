import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfqbnn import callbacks, models, priors
from tfqbnn.layers import DenseVariational


def _synthetic(n=3000, seed=0):
    """Ten Gaussian clusters in [0, 1]^784: a task an MLP can learn in a few epochs."""
    centers = np.random.default_rng(1234).uniform(0, 1, (10, 784)).astype("float32")
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    x = np.clip(centers[y] + rng.normal(0, 0.35, (n, 784)), 0, 1).astype("float32")
    return x, y


def _layer(q, units=20, **kw):
    layer = DenseVariational(units, quantization=q, seed=3, init_sigma=0.05, **kw)
    layer.build((None, 30))
    layer.mu.assign(np.random.default_rng(1).uniform(-1, 1, (30, units)).astype("float32"))
    return layer


def test_jq4_trains_with_kl_annealing_to_95_percent():
    keras.utils.set_random_seed(0)
    x, y = _synthetic(8000)
    xt, yt = _synthetic(1000, seed=1)
    model = models.mlp(quantization="jq4", num_examples=len(x), seed=0)
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    ann = callbacks.KLAnnealing("linear", warmup=0.5)
    hist = model.fit(x, y, epochs=5, batch_size=128, callbacks=[ann], verbose=0)
    assert hist.history["kl_weight"][-1] == 1.0 and hist.history["kl_weight"][0] < 1.0
    probs = model.predict(xt, verbose=0)
    assert (probs.argmax(-1) == yt).mean() >= 0.95


def test_distinct_values_jq4_vpq4():
    jq = _layer("jq4")
    w = jq.sample_weights(1)[0].numpy()
    assert len(np.unique(w)) <= 15
    np.testing.assert_allclose(np.round(w * 7), w * 7, atol=1e-5)  # on the k/7 grid
    vpq = _layer("vpq4")
    sigma_q = vpq.quantization.sigma_quantizer(vpq.sigma).numpy()
    assert len(np.unique(sigma_q)) <= 16
    mu_q = vpq.quantization.mu_quantizer(vpq.mu).numpy()
    assert len(np.unique(mu_q)) <= 15


@pytest.mark.parametrize("q", ["fp32", "vpq4", "spq4", "jq4"])
def test_ste_gradients_reach_mu_and_rho(q):
    layer = _layer(q)
    x = tf.random.stateless_uniform((64, 30), seed=(1, 2))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(layer(x, training=True))) + tf.add_n(layer.losses)
    g_mu, g_rho = tape.gradient(loss, [layer.mu, layer.rho])
    assert g_mu is not None and np.count_nonzero(g_mu.numpy()) > 0.5 * g_mu.numpy().size
    assert g_rho is not None and np.count_nonzero(g_rho.numpy()) > 0.5 * g_rho.numpy().size


def test_inference_samples_unless_switched_off():
    layer = _layer("fp32")
    x = np.ones((4, 30), "float32")
    a, b = layer(x).numpy(), layer(x).numpy()
    assert not np.allclose(a, b)
    mean = _layer("jq4", sample_at_inference=False)
    np.testing.assert_array_equal(mean(x).numpy(), mean(x).numpy())
    np.testing.assert_allclose(mean(x).numpy(), x @ mean.quantization.mu_quantizer(mean.mu).numpy(), rtol=1e-5)


def test_sampling_statistics_fp32():
    layer = _layer("fp32", units=3)
    w = layer.sample_weights(4000).numpy()
    np.testing.assert_allclose(w.mean(0), layer.mu.numpy(), atol=0.01)
    np.testing.assert_allclose(w.std(0), layer.sigma.numpy(), rtol=0.1)


def test_closed_form_kl_matches_tfp():
    tfd = tfp.distributions
    rng = np.random.default_rng(0)
    mu = tf.constant(rng.normal(0, 0.3, (50, 7)), tf.float32)
    sigma = tf.constant(rng.uniform(0.01, 0.5, (50, 7)), tf.float32)
    for ps in (0.1, 1.0):
        ours = priors.gaussian_kl(mu, sigma, ps).numpy()
        ref = tf.reduce_sum(tfd.kl_divergence(tfd.Normal(mu, sigma), tfd.Normal(0.0, ps))).numpy()
        assert ours == pytest.approx(ref, rel=1e-5)


def test_kl_loss_scaling_and_tfp_priors():
    layer = _layer("fp32", num_examples=100)
    layer.kl_weight.assign(0.5)
    layer(np.ones((2, 30), "float32"), training=True)
    expected = 0.5 * priors.gaussian_kl(layer.mu, layer.sigma, 1.0).numpy() / 100
    assert layer.losses[-1].numpy() == pytest.approx(expected, rel=1e-5)
    tfd = tfp.distributions
    analytic = _layer("fp32", prior=tfd.Normal(0.0, 1.0))
    assert analytic.kl_divergence().numpy() == pytest.approx(
        priors.gaussian_kl(analytic.mu, analytic.sigma, 1.0).numpy(), rel=1e-5)
    mc = _layer("fp32", prior=tfd.Laplace(0.0, 1.0))  # no analytic KL(Normal || Laplace): Monte Carlo
    est = np.mean([mc.kl_divergence().numpy() for _ in range(50)])
    w = mc.mu.numpy()[None] + mc.sigma.numpy()[None] * np.random.default_rng(0).normal(size=(400,) + mc.mu.shape)
    q = tfd.Normal(mc.mu, mc.sigma)
    ref = np.mean(np.sum(q.log_prob(w).numpy() - tfd.Laplace(0.0, 1.0).log_prob(w).numpy(), axis=(1, 2)))
    assert est == pytest.approx(ref, rel=0.02)


@pytest.mark.parametrize("kind", ["sequential", "functional", "subclassed"])
def test_usable_in_all_model_styles(kind):
    x = np.random.default_rng(0).uniform(size=(8, 12)).astype("float32")
    if kind == "sequential":
        model = keras.Sequential([keras.Input((12,)), DenseVariational(5, "softplus", quantization="jq4")])
    elif kind == "functional":
        inp = keras.Input((12,))
        model = keras.Model(inp, DenseVariational(5, quantization="spq4")(inp))
    else:
        class M(keras.Model):
            def __init__(self):
                super().__init__()
                self.d = DenseVariational(5, quantization="vpq4")

            def call(self, x):
                return self.d(x)

        model = M()
    model.compile("adam", "mse")
    model.fit(x, np.zeros((8, 5), "float32"), epochs=1, verbose=0)
    assert len(model.trainable_weights) == 2 and len(model.losses) >= 0
    assert model(x).shape == (8, 5)


def test_keras_round_trip_restores_every_variable(tmp_path):
    model = models.mlp(hidden=(16,), quantization="jq4", num_examples=10, seed=1)
    model.compile("adam", "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).uniform(size=(32, 784)).astype("float32")
    model.fit(x, np.zeros(32), epochs=1, verbose=0)
    model.layers[0].kl_weight.assign(0.25)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert len(loaded.weights) == len(model.weights)
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)
    assert loaded.layers[0].quantization == model.layers[0].quantization
    assert loaded.layers[0].num_examples == 10


@pytest.mark.parametrize(
    "kwargs, match",
    [({"units": 0}, "units=0"), ({"units": -3}, "units=-3"), ({"units": 2.5}, "units=2.5"),
     ({"units": 4, "quantization": "jq1"}, "bits=1"), ({"units": 4, "quantization": "jq17"}, "bits=17"),
     ({"units": 4, "quantization": "jq33"}, "bits=33"), ({"units": 4, "quantization": "jq0"}, "bits=0"),
     ({"units": 4, "quantization": "int4"}, "Unknown quantization 'int4'"),
     ({"units": 4, "prior_std": 0}, "prior_std=0"), ({"units": 4, "num_examples": -1}, "num_examples=-1"),
     ({"units": 4, "prior": "normal"}, "tensorflow_probability distribution")],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DenseVariational(**kwargs)


def test_wrong_input_rank_or_width():
    model = models.mlp(hidden=(8,), quantization="jq4")
    with pytest.raises(ValueError, match="784"):
        model(np.zeros((2, 100), "float32"))
    layer = DenseVariational(3)
    with pytest.raises(ValueError, match="ndim"):
        layer(np.zeros((2, 3, 4), "float32"))


def _reference_weights_and_kl(mu, rho, key, groups, q, rho_scale=10.0, prior_std=1.0):
    """Plain autodiff through the quantizers' own STE (`Quantizer.__call__`)."""
    from tfqbnn import noise

    sigma = tf.math.softplus(rho_scale * rho)
    mu_u = q.mu_quantizer(mu) if q.mu_quantizer else mu
    s_u = q.sigma_quantizer(sigma) if q.sigma_quantizer else sigma
    w = mu_u[None] + s_u[None] * noise.normal(key, (groups,) + tuple(mu.shape))
    w = q.sample_quantizer(w) if q.sample_quantizer else w
    return w, priors.gaussian_kl(mu, sigma, prior_std)


@pytest.mark.parametrize("xla", [False, True])
@pytest.mark.parametrize("config", ["fp32", "vpq4", "spq4", "jq4", "jq2",
                                    {"strategy": "jq", "bits": 4, "sigma_quantizer": "uniform"}])
def test_fused_gradient_equals_autodiff_through_the_ste(config, xla):
    """The hand-written gradient of the fused sampler = autodiff of the unfused composition."""
    from tfqbnn import layers as L
    from tfqbnn.config import QuantizationConfig

    q = QuantizationConfig.get(config)
    rng = np.random.default_rng(0)
    mu = tf.constant(rng.uniform(-1.1, 1.1, (40, 7)), tf.float32)  # some outside the mu clip
    rho = tf.constant(rng.uniform(-0.7, 0.1, (40, 7)), tf.float32)
    key = tf.constant([123, 456], tf.uint32)
    up_w = tf.constant(rng.normal(size=(3, 40, 7)), tf.float32)
    fused = L._fused_weights_and_kl_xla if xla else L._fused_weights_and_kl

    def loss(f):
        with tf.GradientTape() as tape:
            tape.watch([mu, rho])
            if f is None:
                w, kl = _reference_weights_and_kl(mu, rho, key, 3, q)
            else:
                w, kl = f(mu, rho, key, 3, True, 10.0, 1.0, q.mu_quantizer, q.sigma_quantizer, q.sample_quantizer)
            total = tf.reduce_sum(w * up_w) + 0.3 * kl
        return w, kl, tape.gradient(total, [mu, rho])

    w, kl, (g_mu, g_rho) = loss(fused)
    w_ref, kl_ref, (g_mu_ref, g_rho_ref) = loss(None)
    np.testing.assert_allclose(w.numpy(), w_ref.numpy(), atol=2e-5)
    assert kl.numpy() == pytest.approx(kl_ref.numpy(), rel=1e-5)
    np.testing.assert_allclose(g_mu.numpy(), g_mu_ref.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(g_rho.numpy(), g_rho_ref.numpy(), rtol=1e-4, atol=1e-3)
    assert np.count_nonzero(g_rho.numpy()) > 0.5 * g_rho.numpy().size


def test_jit_compiled_training_step_matches_the_default_one():
    """`model.compile(jit_compile=True)` inlines the sampler (and its `_materialize` conds): same numbers."""
    x = np.random.default_rng(0).uniform(size=(64, 784)).astype("float32")
    y = np.arange(64) % 10
    weights = []
    for jit in (False, True):
        model = models.mlp(hidden=(16,), quantization="jq4", num_examples=64, seed=4)
        model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy", jit_compile=jit)
        model.fit(x, y, batch_size=32, epochs=2, verbose=0, shuffle=False)
        weights.append([np.asarray(v) for v in model.weights])
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_kernel_and_bias_initializers_are_used_and_serialized():
    layer = DenseVariational(3, use_bias=True, kernel_initializer=keras.initializers.Constant(0.25),
                             bias_initializer="ones")
    layer.build((None, 4))
    assert np.all(layer.mu.numpy() == 0.25) and np.all(layer.bias.numpy() == 1.0)
    clone = DenseVariational.from_config(layer.get_config())
    clone.build((None, 4))
    assert np.all(clone.mu.numpy() == 0.25) and np.all(clone.bias.numpy() == 1.0)
    with pytest.raises(ValueError, match="kernel_initializer='nope'"):
        DenseVariational(3, kernel_initializer="nope")
