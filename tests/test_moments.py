"""Exact quantized-weight moments and activation moment matching (`tfqbnn.moments`) against
enumeration of the sampler, Monte-Carlo draws through the real layer, and numerical integration.

Tolerances: a Monte-Carlo mean is compared within 5 standard errors (sd / sqrt(n)); a Monte-Carlo
variance within 5 standard errors sqrt((m4 - var^2) / n) computed from the draws; plus 1e-7
for float32 rounding of the sampled values."""

import numpy as np
import pytest
import tensorflow as tf
from scipy.integrate import quad
from scipy.stats import norm

from tfqbnn import moments, noise
from tfqbnn.config import QuantizationConfig
from tfqbnn.layers import DenseVariational


def _rho(layer, sigma):
    sigma = np.asarray(sigma, np.float64)
    return ((sigma + np.log(-np.expm1(-sigma))) / layer.rho_scale).astype("float32")  # softplus^-1


def _layer(quantization, n_in=12, n_out=10, seed=0, sigma_range=(1e-3, 0.5)):
    """A built layer with mu spread over [-1, 1] and sigma log-spread over ``sigma_range``."""
    layer = DenseVariational(n_out, quantization=quantization, seed=seed)
    layer.build((None, n_in))
    rng = np.random.default_rng(seed)
    mu = rng.uniform(-1.0, 1.0, (n_in, n_out)).astype("float32")
    sigma = np.exp(rng.uniform(*np.log(sigma_range), (n_in, n_out)))
    layer.mu.assign(mu)
    layer.rho.assign(_rho(layer, sigma))
    return layer


def _draws(layer, n, chunk=20_000):
    return np.concatenate([layer.sample_weights(groups=chunk).numpy() for _ in range(n // chunk)]).astype(np.float64)


def _assert_moments(samples, mean, var, axis=0, k=5.0):
    n = samples.shape[axis]
    m_hat = samples.mean(axis)
    c = samples - m_hat
    v_hat = (c**2).mean(axis)
    m4 = (c**4).mean(axis)
    np.testing.assert_array_less(np.abs(m_hat - mean), k * np.sqrt(var / n) + 1e-7)
    np.testing.assert_array_less(np.abs(v_hat - var), k * np.sqrt(np.maximum(m4 - v_hat**2, 0) / n) + 1e-7)


@pytest.mark.parametrize("q", ["fp32", "vpq4", "spq4", "jq4", "jq3"])
def test_weight_moments_match_draws_through_the_real_sampler(q):
    layer = _layer(q)
    w = _draws(layer, 100_000)
    mean, var = moments.layer_weight_moments(layer)
    _assert_moments(w, mean, var)
    if q.startswith(("spq", "jq")):  # the draws lie on the grid and the frozen weights never move
        home = moments.quantized_mean_weights(np.asarray(layer.mu), layer.quantization)
        frozen = var < 1e-20
        assert frozen.any()
        np.testing.assert_array_equal(w[:, frozen], np.broadcast_to(home[frozen], w[:, frozen].shape))
        np.testing.assert_allclose(mean[frozen], home[frozen], atol=1e-12)


@pytest.mark.parametrize(
    "q,mu,sigma",
    [("jq4", 0.31, 0.05), ("jq4", -0.5, 0.2), ("jq4", 0.07, 0.01), ("spq4", 0.9, 0.4), ("spq3", -0.23, 0.12),
     ("jq2", 0.4, 0.6)],
)
def test_weight_moments_equal_enumeration_of_all_sampler_eps(q, mu, sigma):
    """All 2**23 equally likely eps of the sampler through the layer's quantizers: the exact distribution."""
    config = QuantizationConfig.get(q)
    m, s = moments.used_mean_and_std([mu], [sigma], config)
    eps = tf.constant(moments.sampler_eps_table(), tf.float32)
    w = config.sample_quantizer.quantize(tf.constant(m, tf.float32) + tf.constant(s, tf.float32) * eps).numpy()
    w = w.astype(np.float64)
    exact_mean, exact_var = w.mean(), w.var()
    for model, tol in (("sampler", 1e-6), ("gaussian", 1e-6)):
        mean, var = moments.weight_moments([mu], [sigma], config, noise=model)
        assert abs(mean[0] - exact_mean) < tol, (model, mean[0], exact_mean)
        assert abs(var[0] - exact_var) < tol, (model, var[0], exact_var)


def test_sampler_eps_table_is_the_generator():
    table = moments.sampler_eps_table()
    assert table.size == 2**23 and np.all(np.diff(table) >= 0)
    assert table[0] == pytest.approx(-5.29, abs=0.01) and table[-1] == -table[0]
    drawn = tf.function(lambda k: noise.normal(k, (1000,)), jit_compile=True)(tf.constant([3, 4], tf.uint32))
    drawn = drawn.numpy()
    assert np.all(np.isin(drawn, table.astype(np.float32)))


def test_level_probabilities_sum_to_one_and_handle_zero_sigma():
    q = QuantizationConfig.get("jq4").sample_quantizer
    p = moments.level_probabilities(np.array([0.3, -1.2, 0.0]), np.array([0.1, 0.2, 0.0]), q)
    np.testing.assert_allclose(p.sum(0), 1.0, atol=1e-12)
    assert p[:, 1].argmax() == 0  # -1.2 clips to the lowest level
    assert p[q.max_code, 2] == 1.0  # sigma = 0: a point mass on round(0) = 0


@pytest.mark.parametrize("q", ["fp32", "jq4"])
def test_layer_output_moments_against_monte_carlo(q):
    """First and second moments of a layer's output from 10**5 samples: a fixed input, then a random input."""
    from tfqbnn.propagation import _Context, dense_variational_moments

    layer = _layer(q, n_in=30, n_out=5, seed=1, sigma_range=(0.02, 0.3))
    w = _draws(layer, 100_000)  # [n, 30, 5]
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 1, 30)
    m, v = dense_variational_moments(layer, x[None], np.zeros((1, 30)), _Context("gaussian"))
    _assert_moments(np.einsum("i,nij->nj", x, w), m[0], v[0])
    # independent Gaussian inputs (as PFP feeds a hidden layer): the formula with input variance
    a, b = rng.uniform(0, 1, 30), rng.uniform(0, 0.3, 30)
    xs = a + np.sqrt(b) * rng.standard_normal((w.shape[0], 30))
    m, v = dense_variational_moments(layer, a[None], b[None], _Context("gaussian"))
    _assert_moments(np.einsum("ni,nij->nj", xs, w), m[0], v[0])


def test_relu_closed_form_against_monte_carlo():
    rng = np.random.default_rng(0)
    for m, v in [(0.0, 1.0), (1.5, 0.3), (-2.0, 4.0), (-0.3, 0.01), (3.0, 0.0)]:
        z = np.maximum(m + np.sqrt(v) * rng.standard_normal(1_000_000), 0)
        mean, var = moments.relu_moments(m, v)
        _assert_moments(z, mean, var)


def _softplus_reference(m, s):
    pts = [0.0] if abs(m) < 12 * s else None
    kw = dict(epsabs=1e-14, epsrel=1e-13, limit=400, points=pts)
    e1 = quad(lambda z: np.logaddexp(0, z) * norm.pdf(z, m, s), m - 12 * s, m + 12 * s, **kw)[0]
    e2 = quad(lambda z: np.logaddexp(0, z) ** 2 * norm.pdf(z, m, s), m - 12 * s, m + 12 * s, **kw)[0]
    return e1, e2 - e1 * e1


def test_softplus_moments_against_numerical_integration():
    """Measured over m in [-10, 10] x sd in [0.01, 30]: |mean error| <= 2.5e-8, variance relative error <= 7.9e-7."""
    worst_mean = worst_var = 0.0
    for s in (0.01, 0.3, 1.0, 1.99, 2.01, 5.0, 30.0):
        for m in (-10.0, -3.0, -0.5, 0.0, 0.7, 4.0, 10.0):
            e, v = _softplus_reference(m, s)
            em, vm = moments.softplus_moments(m, s * s)
            worst_mean, worst_var = max(worst_mean, abs(em - e)), max(worst_var, abs(vm - v) / v)
    assert worst_mean < 1e-7 and worst_var < 5e-6, (worst_mean, worst_var)
    # the plain 16-node Gauss-Hermite rule alone would not do at large sd (kink of softplus at 0)
    x, w = np.polynomial.hermite_e.hermegauss(16)
    e, _ = _softplus_reference(0.0, 5.0)
    assert abs(np.logaddexp(0, 5.0 * x) @ (w / w.sum()) - e) > 1e-3


def test_activation_moments_dispatch():
    m, v = np.array([0.3]), np.array([0.2])
    assert moments.activation_moments(None, m, v) == (m, v)
    np.testing.assert_array_equal(moments.activation_moments("relu", m, v)[0], moments.relu_moments(m, v)[0])
    with pytest.raises(ValueError, match="no moment matching for activation 'tanh'"):
        moments.activation_moments("tanh", m, v)


def test_flip_probability_against_draws_and_diagnostic_extremes():
    import keras

    layer = _layer("jq4", n_in=12, n_out=10, seed=3, sigma_range=(1e-3, 0.3))
    p = moments.flip_probability(np.asarray(layer.mu), np.asarray(layer.sigma), layer.quantization)
    home = moments.quantized_mean_weights(np.asarray(layer.mu), layer.quantization)
    w = _draws(layer, 40_000)
    freq = (w != home).mean(0)
    np.testing.assert_array_less(np.abs(freq - p), 5 * np.sqrt(p * (1 - p) / w.shape[0]) + 1e-9)

    # all sigma far below half the 4-bit step: sampling is gone; far above: it survives
    for sigma, flips in ((1e-3, 0.0), (0.5, 0.85)):
        model = keras.Sequential([keras.Input((12,)), DenseVariational(4, quantization="jq4", name="d")])
        d = model.layers[-1]
        d.rho.assign(np.full(d.rho.shape, _rho(d, sigma), "float32"))
        row = moments.diagnostic(model)["d"]
        if flips == 0.0:
            assert row["flip_rate"] < 1e-12 and row["frozen_fraction"] == 1.0 and row["never_flip_in_30"] > 1 - 1e-9
            assert row["sigma_below_half_step"] == 1.0 and row["variance_ratio"] < 1e-12
        else:
            assert row["flip_rate"] > flips and row["frozen_fraction"] == 0.0
        assert "flip_rate" in moments.diagnostic_summary({"d": row})
    fp = keras.Sequential([keras.Input((12,)), DenseVariational(4, name="f")])
    assert moments.diagnostic(fp)["f"]["variance_ratio"] == pytest.approx(1.0)


def test_bad_noise_model():
    with pytest.raises(ValueError, match="received noise='uniform'"):
        moments.weight_moments([0.1], [0.1], QuantizationConfig.get("jq4"), noise="uniform")
