"""The counter-based Gaussian noise that drives weight sampling (`tfqbnn.noise`)."""

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from tfqbnn import noise

N = 400_000


def _draw(k0, k1, n=N):
    return noise.normal(tf.constant([k0, k1], tf.uint32), (n,)).numpy().astype(np.float64)


def test_same_key_same_noise_other_key_other_noise():
    a, b = _draw(1, 2, 1000), _draw(1, 2, 1000)
    np.testing.assert_array_equal(a, b)
    assert np.mean(a == _draw(1, 3, 1000)) < 0.01
    assert np.mean(a == _draw(2, 2, 1000)) < 0.01


def test_moments_and_ks_distance_to_standard_normal():
    z = _draw(12345, 678)
    se = 1 / np.sqrt(N)
    assert abs(z.mean()) < 4 * se
    assert abs(z.std() - 1) < 4 * se * np.sqrt(0.5) * 1.5
    assert abs(stats.skew(z)) < 4 * np.sqrt(6 / N)
    assert abs(stats.kurtosis(z)) < 4 * np.sqrt(24 / N)
    # 1% critical value of the KS statistic is 1.63 / sqrt(n)
    assert stats.kstest(z, "norm").statistic < 1.63 * se
    # tails: P(|z| > 3) = 0.0027
    assert abs(np.mean(np.abs(z) > 3) - 0.0027) < 4 * np.sqrt(0.0027 / N)


def test_no_correlation_between_neighbours_or_consecutive_keys():
    z = _draw(7, 9)
    lim = 4 / np.sqrt(N)
    for lag in (1, 2, 100, 784):
        assert abs(np.corrcoef(z[:-lag], z[lag:])[0, 1]) < lim
    for other in (_draw(8, 9), _draw(7, 10)):  # keys one apart in either word
        assert abs(np.corrcoef(z, other)[0, 1]) < lim


def test_extreme_bits_stay_finite_and_symmetric():
    bits = tf.constant([0, 1, 0xFFFFFFFF, 0xFFFFFE00, 2**31], tf.uint32)
    z = noise.normal_from_bits(bits).numpy()
    assert np.all(np.isfinite(z))
    assert z[0] == -z[2] and abs(z[0]) == pytest.approx(5.29, abs=0.01)
    assert abs(z[4]) < 1e-6


def test_xla_and_eager_agree():
    key = tf.constant([3, 4], tf.uint32)
    eager = noise.normal(key, (784, 100)).numpy()
    xla = tf.function(lambda k: noise.normal(k, (784, 100)), jit_compile=True)(key).numpy()
    np.testing.assert_allclose(xla, eager, rtol=2e-5, atol=1e-6)  # two erfinv implementations


def test_new_key_follows_the_generator_seed():
    a = noise.new_key(tf.random.Generator.from_seed(5)).numpy()
    b = noise.new_key(tf.random.Generator.from_seed(5)).numpy()
    c = noise.new_key(tf.random.Generator.from_seed(6)).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_too_many_elements_is_an_error():
    with pytest.raises(ValueError, match="received shape=\\(65536, 65536\\)"):
        noise.uniform_bits(tf.constant([0, 0], tf.uint32), (65536, 65536))
