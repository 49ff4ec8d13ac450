"""KL divergence between the mean-field Gaussian posterior and the prior.

The default prior is ``N(0, prior_std**2)`` with the KL in closed form.  Any
``tfp.distributions`` distribution is accepted as well: its analytic KL is used
when TFP registers one for ``(Normal, prior)``, otherwise a one-sample Monte-Carlo
estimate ``log q(w) - log p(w)`` on the (unquantized) sampled weights.
"""

from __future__ import annotations

import math

import tensorflow as tf


def gaussian_kl(mu, sigma, prior_std):
    """Sum over elements of KL(N(mu, sigma^2) || N(0, prior_std^2)), closed form."""
    ps = tf.cast(prior_std, mu.dtype)
    return tf.reduce_sum(
        tf.math.log(ps) - tf.math.log(sigma) + (tf.square(sigma) + tf.square(mu)) / (2.0 * tf.square(ps)) - 0.5
    )


def _tfd():
    import tensorflow_probability as tfp  # imported lazily: TFP import costs ~1 s

    return tfp.distributions


def is_tfp_distribution(obj):
    mod = type(obj).__module__
    return mod.startswith("tensorflow_probability")


def distribution_kl(mu, sigma, prior, w_sample):
    """KL(q || prior) for a TFP prior: analytic if registered, else Monte Carlo."""
    tfd = _tfd()
    q = tfd.Normal(loc=mu, scale=sigma)
    try:
        return tf.reduce_sum(tfd.kl_divergence(q, prior))
    except NotImplementedError:
        return tf.reduce_sum(q.log_prob(w_sample) - prior.log_prob(w_sample))


def softplus_inverse(x):
    """rho such that softplus(rho) == x (float)."""
    return x + math.log(-math.expm1(-x))
