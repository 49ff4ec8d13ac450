"""Exact moments of the quantized weight-sample distribution, and moment matching through activations.

A variational layer samples each weight independently as

* FP32: ``w = mu + sigma * eps``
* VPQ:  ``w = Qm(mu) + Qv(sigma) * eps``
* SPQ:  ``w = Qs(mu + sigma * eps)``
* JQ:   ``w = Qs(Qm(mu) + Qv(sigma) * eps)``

For FP32 / VPQ the weight is Gaussian.  For SPQ / JQ it takes one of the
``2**bits - 1`` grid levels ``k * delta``; level ``k`` collects the ``eps`` for
which ``m + s * eps`` rounds to it, so its probability is a difference of two
CDF values of ``eps`` and ``E[w]``, ``Var[w]`` are finite sums (exact up to
float error).  Two noise models:

* ``"gaussian"`` -- ``eps ~ N(0, 1)`` exactly (the model the layer stands for);
* ``"sampler"`` -- the distribution `tfqbnn.noise` really draws: ``2**23``
  equally likely values ``sqrt(2) * erfinv((x + 0.5) / 2**22 - 1)``, so
  ``|eps| <= 5.29``.  Its CDF differs from the Gaussian one by at most
  ``2**-23`` plus the truncated tail mass (6e-8), so the two give moments that
  differ by about 1e-7 of the weight range (measured in
  ``results/cheap_uncertainty``).

Activation moment matching, for ``z ~ N(m, v)``:

* ReLU: closed form (``E = m Phi(a) + s phi(a)``, ``E[y^2] = (m^2 + v) Phi(a) + m s phi(a)``, ``a = m / s``);
* SoftPlus: quadrature with ``order`` nodes (default 32): Gauss-Hermite for sd <= 2,
  closed-form ReLU part plus Gauss-Laguerre for the remainder above (`softplus_moments`);
  error against adaptive numerical integration in ``tests/test_moments.py`` and
  ``results/cheap_uncertainty``;
* linear / None: identity.

`diagnostic` summarises, per layer, how much of the sampling survives
quantization (flip probabilities, frozen weights, variance ratio).
"""

from __future__ import annotations

import functools
import math
import warnings

import keras
import numpy as np
import tensorflow as tf
from scipy.special import ndtr

NOISE_MODELS = ("gaussian", "sampler")
_SQRT2PI = math.sqrt(2.0 * math.pi)


def is_variational(layer):
    """True for a layer that samples mean-field Gaussian weights (`DenseVariational` and its kin).

    Recognised by attributes, not by class, so later layer kinds (conv, the planned
    ``VariationalLayer`` base) qualify without changing this module.
    """
    return all(hasattr(layer, a) for a in ("mu", "sigma", "quantization")) and getattr(layer, "built", False)


def _check_noise(noise):
    if noise not in NOISE_MODELS:
        raise ValueError(f"`noise` must be one of {list(NOISE_MODELS)}; received noise={noise!r}")


# -- the distribution of eps ------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def sampler_eps_table():
    """All ``2**23`` values the weight sampler's eps can take, ascending (float64), each equally likely."""
    from tfqbnn import noise as tfq_noise

    bits = tf.constant(np.arange(2**23, dtype=np.uint32) << np.uint32(9))
    # compiled like the layer's sampler: XLA's erfinv differs from the eager kernel by up to 2e-5 relative
    eps = tf.function(tfq_noise.normal_from_bits, jit_compile=True)(bits).numpy().astype(np.float64)
    return np.sort(eps)


def eps_cdf(z, noise="gaussian"):
    """``P(eps <= z)`` elementwise for the chosen noise model."""
    _check_noise(noise)
    z = np.asarray(z, dtype=np.float64)
    if noise == "gaussian":
        return ndtr(z)
    table = sampler_eps_table()
    return np.searchsorted(table, z, side="right") / float(table.size)


# -- per-weight moments --------------------------------------------------------------------
def _as_f32(x):
    return tf.convert_to_tensor(np.asarray(x, dtype=np.float32))


def used_mean_and_std(mu, sigma, quantization):
    """``(m, s)`` of the pre-quantization Gaussian ``m + s * eps``, float64: ``Qm(mu)``, ``Qv(sigma)`` if set.

    The quantizers run on float32 tensors, as in the layer, so the codes are the same.
    """
    q = quantization
    m = q.mu_quantizer.quantize(_as_f32(mu)) if q.mu_quantizer is not None else _as_f32(mu)
    s = q.sigma_quantizer.quantize(_as_f32(sigma)) if q.sigma_quantizer is not None else _as_f32(sigma)
    return np.asarray(m, np.float64), np.asarray(s, np.float64)


def level_probabilities(m, s, quantizer, noise="gaussian"):
    """``P(w = k * delta)`` for ``w = Q(m + s * eps)``: array ``[num_levels, *m.shape]``, levels ascending.

    Level ``k`` (``|k| <= K``) takes ``m + s * eps`` in ``[(k - 1/2) delta, (k + 1/2) delta)``; the end
    levels also take everything beyond (the quantizer clips).
    """
    m, s = np.asarray(m, np.float64), np.asarray(s, np.float64)
    big_k, delta = quantizer.max_code, quantizer.delta
    ks = np.arange(-big_k, big_k + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        # CDF at the upper edge of each level but the last
        edges = (ks[:-1, None] + 0.5).reshape((-1,) + (1,) * m.ndim) * delta
        cdf = eps_cdf((edges - m) / np.where(s > 0, s, np.inf), noise)
    if np.any(s <= 0):  # a point mass: the level the mean rounds to
        cdf = np.where(s > 0, cdf, (edges >= m).astype(np.float64))
    ones = np.ones((1,) + m.shape)
    upper = np.concatenate([cdf, ones], 0)
    lower = np.concatenate([np.zeros((1,) + m.shape), cdf], 0)
    return np.clip(upper - lower, 0.0, 1.0)


def weight_moments(mu, sigma, quantization, noise="gaussian"):
    """Exact ``(E[w], Var[w])`` of the sampled weights, float64 arrays of ``mu``'s shape.

    Args:
        mu: the variational means (unquantized).
        sigma: the variational standard deviations (unquantized), of ``mu``'s shape.
        quantization: a `QuantizationConfig`.
        noise: ``"gaussian"`` (``eps ~ N(0, 1)``) or ``"sampler"`` (the truncated,
            discrete eps of `tfqbnn.noise`); see the module docstring.
    """
    _check_noise(noise)
    m, s = used_mean_and_std(mu, sigma, quantization)
    q = quantization.sample_quantizer
    if q is None:  # Gaussian weights; the sampler's eps has variance 1 - 4e-7 (truncation), ignored
        return m, s * s
    p = level_probabilities(m, s, q, noise)
    # the float32 grid values the sampler outputs
    levels = np.asarray(q.dequantize(tf.range(-q.max_code, q.max_code + 1)), np.float64)
    levels = levels.reshape((-1,) + (1,) * m.ndim)
    mean = np.sum(p * levels, 0)
    var = np.sum(p * (levels - mean) ** 2, 0)  # two passes: no cancellation for tiny variances
    return mean, var


def layer_weight_moments(layer, noise="gaussian"):
    """`weight_moments` of a variational layer's kernel."""
    return weight_moments(np.asarray(layer.mu), np.asarray(layer.sigma), layer.quantization, noise)


def quantized_mean_weights(mu, quantization):
    """The weight every sample would equal without noise: ``Qs(Qm(mu))`` (``Qm``/``Qs`` if set)."""
    q = quantization
    m = q.mu_quantizer.quantize(_as_f32(mu)) if q.mu_quantizer is not None else _as_f32(mu)
    if q.sample_quantizer is not None:
        m = q.sample_quantizer.quantize(m)
    return np.asarray(m, np.float64)


def flip_probability(mu, sigma, quantization, noise="gaussian"):
    """``P(w != Qs(Qm(mu)))`` per weight: how often a sample leaves its quantized mean (1 if unquantized)."""
    q = quantization.sample_quantizer
    if q is None:
        return np.ones(np.shape(mu))
    m, s = used_mean_and_std(mu, sigma, quantization)
    p = level_probabilities(m, s, q, noise)
    home = q.codes(quantized_mean_weights(mu, quantization)) + q.max_code
    return 1.0 - np.take_along_axis(p, home[None], 0)[0]


# -- the diagnostic -------------------------------------------------------------------------
def diagnostic(model, frozen_below=0.01, draws=(20, 30), noise="gaussian"):
    """How much sampling survives quantization, per variational layer.

    Per layer: ``flip_rate`` (mean over weights of ``P(w != quantized mean)``),
    ``frozen_fraction`` (weights with that probability below ``frozen_below``),
    ``never_flip_in_{S}`` (expected fraction of weights that stay at their
    quantized mean in all of S draws, ``mean (1 - p)^S``), ``sigma_below_half_step``
    (fraction with ``Qv(sigma)`` below half the sample grid step), and
    ``variance_ratio`` = sum of quantized ``Var[w]`` / sum of ``sigma^2``.

    Returns:
        dict layer name -> dict of floats (JSON-ready).
    """
    out = {}
    for layer in model._flatten_layers(include_self=False):
        if not is_variational(layer):
            continue
        mu, sigma = np.asarray(layer.mu), np.asarray(layer.sigma)
        q = layer.quantization
        _, var = weight_moments(mu, sigma, q, noise)
        p = flip_probability(mu, sigma, q, noise)
        _, s_used = used_mean_and_std(mu, sigma, q)
        row = {
            "weights": int(mu.size),
            "quantization": q.name,
            "flip_rate": float(p.mean()),
            "frozen_fraction": float(np.mean(p < frozen_below)),
            **{f"never_flip_in_{int(d)}": float(np.mean((1.0 - p) ** int(d))) for d in draws},
            "variance_ratio": float(var.sum() / np.sum(sigma.astype(np.float64) ** 2)),
            "mean_sigma": float(sigma.mean()),
        }
        if q.sample_quantizer is not None:
            row["sigma_below_half_step"] = float(np.mean(s_used < q.sample_quantizer.delta / 2))
        out[layer.name] = row
    return out


def sigma_below_half_step(model):
    """Per quantized-sample variational layer: the fraction of its weights whose used ``Qv(sigma)`` is below half
    the sample grid step (such a weight rounds back to its quantized mean in most draws; `diagnostic`'s
    ``sigma_below_half_step``).  Returns ``{layer name: fraction}``; layers without a sample quantizer are left out."""
    out = {}
    for layer in model._flatten_layers(include_self=False):
        if not is_variational(layer) or layer.quantization.sample_quantizer is None or not layer.built:
            continue
        _, s_used = used_mean_and_std(np.asarray(layer.mu), np.asarray(layer.sigma), layer.quantization)
        out[layer.name] = float(np.mean(s_used < layer.quantization.sample_quantizer.delta / 2))
    return out


FROZEN_SIGMA_FRACTION = 0.5


def warn_frozen_sigma(model, fraction=FROZEN_SIGMA_FRACTION, warned=None, where=""):
    """Warn (`UserWarning`) once per layer, naming it, when more than ``fraction`` of a quantized layer's weights
    have sigma below half the sample grid step: the layer then samples almost nothing and acts deterministically.

    ``warned``: a set of layer names already warned about (updated; None: a new one).  Returns the flagged
    ``{layer name: fraction}``."""
    warned = set() if warned is None else warned
    flagged = {k: v for k, v in sigma_below_half_step(model).items() if v > fraction}
    for name, frac in flagged.items():
        if name in warned:
            continue
        warned.add(name)
        layer = next(l for l in model._flatten_layers(include_self=False) if l.name == name)
        half = layer.quantization.sample_quantizer.delta / 2
        warnings.warn(
            f"{where}layer {name!r}: {100 * frac:.0f} % of its weights have sigma below half the "
            f"{layer.quantization.name} sample step ({half:.4g}; mean sigma {float(np.mean(layer.sigma)):.4g}), so "
            "their sampled weights round back to the mean and the layer is nearly deterministic. Train longer or "
            "with a larger `rho_scale` / `init_sigma`, or use more sample bits.", UserWarning, stacklevel=2)
    return flagged


def diagnostic_summary(diag):
    """A printable table of `diagnostic`'s output."""
    never = sorted({k for r in diag.values() for k in r if k.startswith("never_flip_in_")},
                   key=lambda k: int(k.rsplit("_", 1)[1]))
    keys = ["flip_rate", "frozen_fraction", *never, "sigma_below_half_step", "variance_ratio"]
    head = f"{'layer':<12} {'quant':<6} {'weights':>8} " + " ".join(f"{k:>22}" for k in keys)
    lines = [head]
    for name, r in diag.items():
        vals = " ".join(f"{r[k]:>22.4f}" if k in r else f"{'-':>22}" for k in keys)
        lines.append(f"{name:<12} {r['quantization']:<6} {r['weights']:>8} {vals}")
    return "\n".join(lines)


# -- activations ----------------------------------------------------------------------------
def relu_moments(m, v):
    """Mean and variance of ``max(z, 0)`` for ``z ~ N(m, v)`` (closed form; ``v = 0`` allowed)."""
    m, v = np.asarray(m, np.float64), np.maximum(np.asarray(v, np.float64), 0.0)
    s = np.sqrt(v)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(s > 0, m / s, np.where(m >= 0, np.inf, -np.inf))
    cdf = ndtr(a)
    pdf = np.where(np.isfinite(a), np.exp(-0.5 * np.where(np.isfinite(a), a, 0.0) ** 2) / _SQRT2PI, 0.0)
    mean = m * cdf + s * pdf
    second = (m * m + v) * cdf + m * s * pdf
    return mean, np.maximum(second - mean * mean, 0.0)


@functools.lru_cache(maxsize=8)
def _gauss_hermite(order):
    x, w = np.polynomial.hermite_e.hermegauss(int(order))  # for the weight exp(-x^2 / 2)
    return x, w / w.sum()


def _softplus(x):
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))  # 2x faster than np.logaddexp(0, x)


def softplus_moments(m, v, order=32):
    """Mean and variance of ``softplus(z)`` for ``z ~ N(m, v)``, by quadrature.

    Where ``sd <= 2``: ``order``-node (``order // 2`` where ``sd <= 1``) Gauss-Hermite in the Gaussian variable (the integrand is
    analytic and smooth on the Gaussian's scale).  Where ``sd > 2`` the kink of softplus at 0
    is sharp on that scale and Gauss-Hermite converges slowly, so there
    ``softplus(z) = relu(z) + log(1 + exp(-|z|))``: the ReLU part in closed form, the
    remainder (localized at |z| < ~20) by ``order``-node Gauss-Laguerre on each half line.
    Error against adaptive numerical integration: `tests/test_moments.py`.
    """
    m, v = np.asarray(m, np.float64), np.maximum(np.asarray(v, np.float64), 0.0)
    m, v = np.broadcast_arrays(m, v)
    sd = np.sqrt(v)
    mean, var = np.empty(m.shape), np.empty(m.shape)
    small = sd <= 2.0
    # sd <= 1 needs half the nodes for the same accuracy (measured: |error| < 1e-9 with 16)
    for sel, nodes in ((sd <= 1.0, max(order // 2, 8)), (small & (sd > 1.0), order)):
        if np.any(sel):
            x, w = _gauss_hermite(nodes)
            f = _softplus(m[sel][:, None] + sd[sel][:, None] * x)
            mean[sel] = f @ w
            var[sel] = ((f - mean[sel][:, None]) ** 2) @ w
    if np.any(~small):
        mm, ss = m[~small], sd[~small]
        r_mean, r_var = relu_moments(mm, ss * ss)
        relu_second = r_var + r_mean * r_mean
        t, wt = _gauss_laguerre(order)  # integral_0^inf e^-t f(t) dt ~ sum wt f(t)
        rem = np.log1p(np.exp(-t)) * np.exp(t)  # r(t) e^t, smooth in [ln 2, 1]
        rem2 = np.log1p(np.exp(-t)) ** 2 * np.exp(t)
        dens_pos = np.exp(-0.5 * ((t - mm[:, None]) / ss[:, None]) ** 2) / (_SQRT2PI * ss[:, None])
        dens_neg = np.exp(-0.5 * ((-t - mm[:, None]) / ss[:, None]) ** 2) / (_SQRT2PI * ss[:, None])
        e_r = (dens_pos + dens_neg) @ (wt * rem)
        # E[softplus^2] = E[relu^2] + E[2 relu r + r^2]; relu = t on the positive half, 0 on the negative
        e_q = dens_pos @ (wt * (2 * t * rem + rem2)) + dens_neg @ (wt * rem2)
        mean[~small] = r_mean + e_r
        var[~small] = np.maximum(relu_second + e_q - mean[~small] ** 2, 0.0)
    return mean, var


@functools.lru_cache(maxsize=8)
def _gauss_laguerre(order):
    return np.polynomial.laguerre.laggauss(int(order))


def activation_slope(activation, m, v, order=32):
    """``E[f'(z)]`` for ``z ~ N(m, v)``: the first-order factor of covariances through ``f``
    (Stein: ``Cov(z', f(z)) = E[f'(z)] Cov(z', z)`` for jointly Gaussian ``z, z'``)."""
    if isinstance(activation, str):
        activation = keras.activations.get(activation)
    name = "linear" if activation is None else keras.activations.serialize(activation)
    m, v = np.broadcast_arrays(np.asarray(m, np.float64), np.maximum(np.asarray(v, np.float64), 0.0))
    sd = np.sqrt(v)
    if name == "linear":
        return np.ones(m.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        step = ndtr(np.where(sd > 0, m / sd, np.where(m >= 0, np.inf, -np.inf)))
    if name == "relu":
        return step
    if name != "softplus":
        raise ValueError(f"no moment matching for activation {name!r}; supported: {sorted(ACTIVATION_MOMENTS)}")
    out = np.empty(m.shape)
    small = sd <= 2.0
    if np.any(small):
        x, w = _gauss_hermite(order)
        out[small] = (0.5 * (1 + np.tanh(0.5 * (m[small][:, None] + sd[small][:, None] * x)))) @ w
    if np.any(~small):  # E[sigmoid] = Phi(m/s) + E[(z - m) r(z)] / v, r = softplus - relu (Stein)
        mm, ss = m[~small], sd[~small]
        t, wt = _gauss_laguerre(order)
        rem = np.log1p(np.exp(-t)) * np.exp(t)
        dens_pos = np.exp(-0.5 * ((t - mm[:, None]) / ss[:, None]) ** 2) / (_SQRT2PI * ss[:, None])
        dens_neg = np.exp(-0.5 * ((-t - mm[:, None]) / ss[:, None]) ** 2) / (_SQRT2PI * ss[:, None])
        corr = ((t - mm[:, None]) * dens_pos + (-t - mm[:, None]) * dens_neg) @ (wt * rem)
        out[~small] = step[~small] + corr / (ss * ss)
    return out


def linear_moments(m, v):
    return np.asarray(m, np.float64), np.asarray(v, np.float64)


ACTIVATION_MOMENTS = {"relu": relu_moments, "softplus": softplus_moments, "linear": linear_moments}


def activation_moments(activation, m, v, softplus_order=32):
    """Moment-match ``activation(z)``, ``z ~ N(m, v)``; ``activation`` a Keras activation, name or None."""
    if isinstance(activation, str):
        activation = keras.activations.get(activation)
    name = "linear" if activation is None else keras.activations.serialize(activation)
    if isinstance(name, dict):
        name = name.get("config", name.get("class_name"))
    if name not in ACTIVATION_MOMENTS:
        raise ValueError(
            f"no moment matching for activation {name!r}; supported: {sorted(ACTIVATION_MOMENTS)}"
        )
    if name == "softplus":
        return softplus_moments(m, v, softplus_order)
    return ACTIVATION_MOMENTS[name](m, v)
