"""Cheaper predictive uncertainty: exact first-layer moments (hybrid) and a probabilistic forward pass (PFP).

`predict_uncertainty(model, x, method)` returns the decomposition of
`tfqbnn.uncertainty.decompose` (mean probabilities, predictive entropy,
expected entropy, mutual information) by one of

* ``"mc"`` -- today's Monte Carlo: S weight samples of every layer (`predict_mc`).
* ``"hybrid"`` -- for a fixed input the first variational layer's
  pre-activations are independent across units, with mean ``x @ E[w]`` and
  variance ``x^2 @ Var[w]`` (`tfqbnn.moments` gives E[w], Var[w] exactly, also
  for quantized samples).  They are computed once; each of the S samples draws
  only those pre-activations (as Gaussians) and samples the later layers'
  weights as MC does.  For FP32 / VPQ this is the same distribution as MC; for
  SPQ / JQ the pre-activation is a sum of many independent discrete terms and
  the Gaussian is an approximation (its KS distance is measured in
  ``results/cheap_uncertainty``).
* ``"pfp"`` -- means and variances through every layer (moment matching through
  the activations, units treated as independent Gaussians), a diagonal
  Gaussian over the logits, and S samples of the logits only.  Approximate
  beyond the first layer: it ignores the correlations between units that
  shared weights induce.

Layer kinds are handled through `LAYER_MOMENTS`, a registry from layer class to
a function ``fn(layer, mean, var, ctx) -> (mean, var)`` of the layer's output
*before* its activation; a new kind (e.g. a convolution) needs one entry.
"""

from __future__ import annotations

import time
import weakref

import keras
import numpy as np
import tensorflow as tf

from tfqbnn import moments
from tfqbnn.layers import DenseVariational, sample_groups
from tfqbnn.uncertainty import _check_inputs, decompose, predict_mc, preserved_random_state

METHODS = ("mc", "hybrid", "pfp")


# -- moment propagation per layer kind ----------------------------------------------------
class _Context:
    """Per-call cache of weight moments (computed once per layer, reused for every batch)."""

    def __init__(self, noise):
        self.noise = noise
        self._cache = {}

    def weight_moments(self, layer):
        key = id(layer)
        if key not in self._cache:
            self._cache[key] = moments.layer_weight_moments(layer, self.noise)
        return self._cache[key]


def dense_variational_moments(layer, mean, var, ctx):
    """``x @ w (+ b)`` with independent weights: mean ``a @ E[w]``, variance ``(a^2 + b) @ Var[w] + b @ E[w]^2``."""
    ew, vw = ctx.weight_moments(layer)
    m = mean @ ew
    v = (mean * mean + var) @ vw + var @ (ew * ew)
    if getattr(layer, "use_bias", False) and layer.bias is not None:
        m = m + np.asarray(layer.bias, np.float64)
    return m, v


def dense_moments(layer, mean, var, ctx):
    """A deterministic `keras.layers.Dense` (partial-Bayesian models): mean ``a @ W + b``, variance ``b @ W^2``."""
    w = np.asarray(layer.kernel, np.float64)
    m = mean @ w
    if layer.use_bias:
        m = m + np.asarray(layer.bias, np.float64)
    return m, var @ (w * w)


def _pass_through(layer, mean, var, ctx):
    """Layers that only move values around (Flatten, Reshape) or are identities at inference (Dropout)."""
    return (np.asarray(layer(mean.astype(np.float32)), np.float64) if not isinstance(layer, keras.layers.Dropout)
            else mean), (np.asarray(layer(var.astype(np.float32)), np.float64)
                         if not isinstance(layer, keras.layers.Dropout) else var)


# Layer class -> moment function of its pre-activation output.  Looked up along the MRO.
LAYER_MOMENTS = {
    DenseVariational: dense_variational_moments,
    keras.layers.Dense: dense_moments,
    keras.layers.Flatten: _pass_through,
    keras.layers.Reshape: _pass_through,
    keras.layers.Dropout: _pass_through,
}


def _moment_fn(layer):
    for cls in type(layer).__mro__:
        if cls in LAYER_MOMENTS:
            return LAYER_MOMENTS[cls]
    raise ValueError(
        f"no moment propagation for layer {layer.name!r} of type {type(layer).__name__}; "
        f"supported: {sorted(c.__name__ for c in LAYER_MOMENTS)} (add one to tfqbnn.propagation.LAYER_MOMENTS)"
    )


def _is_softmax(fn):
    return fn is not None and keras.activations.serialize(fn) == "softmax"


def _chain(model, from_logits):
    """The model's layers as a chain ending in logits: ``[(layer, apply_activation)]``.

    With ``from_logits=False`` the chain must end in a softmax (a `Softmax` layer or a
    softmax activation), which is dropped: the methods work on logits.
    """
    layers = [l for l in model.layers if not isinstance(l, keras.layers.InputLayer)]
    if not layers:
        raise ValueError("the model has no layers")
    chain = [(l, True) for l in layers]
    if not from_logits:
        last = layers[-1]
        if isinstance(last, keras.layers.Softmax):
            chain = chain[:-1]
        elif _is_softmax(getattr(last, "activation", None)):
            chain[-1] = (last, False)
        else:
            raise ValueError(
                f"the model's last layer {last.name!r} is not a softmax; pass from_logits=True if it outputs logits"
            )
    for layer, _ in chain:
        if isinstance(layer, keras.layers.Softmax):
            raise ValueError(f"softmax layer {layer.name!r} is not the model's last layer")
    return chain


def _activation(layer):
    return getattr(layer, "activation", None)


def logit_moments(model, x, from_logits=False, noise="gaussian", softplus_order=32, batch_size=4096,
                  covariance="diagonal"):
    """PFP: mean ``[N, C]`` and variance ``[N, C]`` (or covariance ``[N, C, C]``) of the logits, float64.

    ``covariance="diagonal"`` treats all units as independent Gaussians (the PFP of arXiv
    2511.23440).  ``"full"`` also carries the covariances between units that shared inputs
    induce (exact through dense layers, first order through activations) and returns the
    logits' covariance matrix; dense layers only.
    """
    if covariance not in ("diagonal", "full"):
        raise ValueError(f"`covariance` must be 'diagonal' or 'full'; received covariance={covariance!r}")
    x = _check_inputs(model, x)
    chain = _chain(model, from_logits)
    full = covariance == "full"
    for layer, _ in chain:
        _moment_fn(layer)  # fail before any work
    ctx = _Context(noise)
    out_m, out_v = [], []
    if full:
        batch_size = min(batch_size, 512)  # [B, 100, 100] float64 covariances
    for i in range(0, len(x), batch_size):
        mean = x[i : i + batch_size].astype(np.float64)
        var = np.zeros_like(mean)
        cov = None  # full mode: None while the units are independent (their variances in `var`)
        for layer, apply_act in chain:
            act = _activation(layer) if apply_act and not isinstance(layer, keras.layers.Dropout) else None
            # a layer mixing random, independent or correlated units makes its outputs correlated;
            # a deterministic input (the first layer) keeps them independent
            if full and (cov is not None or np.any(var)):
                if cov is None:
                    cov = _diag_embed(var)
                mean, cov = _covariance_fn(layer)(layer, mean, cov, ctx)
                if act is not None:
                    mean, cov = _activation_covariance(act, mean, cov, softplus_order)
                continue
            mean, var = _moment_fn(layer)(layer, mean, var, ctx)
            if act is not None:
                mean, var = moments.activation_moments(act, mean, var, softplus_order)
        out_m.append(mean)
        out_v.append((cov if cov is not None else _diag_embed(var)) if full else var)
    return np.concatenate(out_m), np.concatenate(out_v)


def dense_variational_covariance(layer, mean, cov, ctx):
    """`dense_variational_moments` with a full input covariance ``[B, n, n]``: output covariance ``[B, k, k]``.

    Exact for independent weights: ``E[w]^T C E[w] + diag((a^2 + diag C) @ Var[w])``.
    """
    ew, vw = ctx.weight_moments(layer)
    m = mean @ ew
    if getattr(layer, "use_bias", False) and layer.bias is not None:
        m = m + np.asarray(layer.bias, np.float64)
    var_in = np.diagonal(cov, axis1=1, axis2=2)
    out = np.einsum("ik,bij,jl->bkl", ew, cov, ew, optimize=True)
    idx = np.arange(ew.shape[1])
    out[:, idx, idx] += (mean * mean + var_in) @ vw
    return m, out


def dense_covariance(layer, mean, cov, ctx):
    w = np.asarray(layer.kernel, np.float64)
    m = mean @ w
    if layer.use_bias:
        m = m + np.asarray(layer.bias, np.float64)
    return m, np.einsum("ik,bij,jl->bkl", w, cov, w, optimize=True)


# Layer class -> propagation of a full covariance (``covariance="full"``); dense kinds only for now.
LAYER_COVARIANCE = {DenseVariational: dense_variational_covariance, keras.layers.Dense: dense_covariance}


def _covariance_fn(layer):
    for cls in type(layer).__mro__:
        if cls in LAYER_COVARIANCE:
            return LAYER_COVARIANCE[cls]
    raise ValueError(
        f"no full-covariance propagation for layer {layer.name!r} of type {type(layer).__name__}; "
        f"supported: {sorted(c.__name__ for c in LAYER_COVARIANCE)}; use covariance='diagonal'"
    )


def _activation_covariance(act, mean, cov, softplus_order):
    """Moment-matched means and variances; off-diagonal covariances to first order (Stein / Price):
    ``Cov(f(a), f(b)) ~ E[f'(a)] E[f'(b)] Cov(a, b)``."""
    var = np.diagonal(cov, axis1=1, axis2=2)
    m2, v2 = moments.activation_moments(act, mean, var, softplus_order)
    g = moments.activation_slope(act, mean, var, softplus_order)
    out = cov * g[:, :, None] * g[:, None, :]
    idx = np.arange(mean.shape[1])
    out[:, idx, idx] = v2
    return m2, out


def _diag_embed(v):
    out = np.zeros(v.shape + v.shape[-1:])
    idx = np.arange(v.shape[-1])
    out[..., idx, idx] = v
    return out


def _softmax(z):
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def predict_pfp(model, x, num_samples=30, from_logits=False, seed=None, noise="gaussian", softplus_order=32,
                batch_size=4096, covariance="diagonal"):
    """Softmax of S samples of the PFP logit Gaussian: ``[S, N, C]`` float32 (see `logit_moments`)."""
    m, v = logit_moments(model, x, from_logits, noise, softplus_order, batch_size, covariance)
    rng = np.random.default_rng(seed)
    out = np.empty((num_samples,) + m.shape, np.float32)
    if v.ndim == 2:
        scale = np.sqrt(v)
        draw = lambda e: m + scale * e  # noqa: E731
    else:  # Cholesky factor per input (a tiny jitter for covariances that are PSD only to rounding)
        c = v.shape[-1]
        chol = np.linalg.cholesky(v + 1e-12 * np.eye(c) * (1 + np.trace(v, axis1=1, axis2=2))[:, None, None] / c)
        draw = lambda e: m + np.einsum("nij,nj->ni", chol, e)  # noqa: E731
    for s in range(num_samples):
        out[s] = _softmax(draw(rng.standard_normal(m.shape)))
    return out


# -- hybrid ------------------------------------------------------------------------------------
_HYBRID_RUNNERS = weakref.WeakKeyDictionary()


def _hybrid_split(model, from_logits):
    layers = [l for l in model.layers if not isinstance(l, keras.layers.InputLayer)]
    first = next((i for i, l in enumerate(layers) if moments.is_variational(l)), None)
    if first is None:
        raise ValueError("the model has no variational layer: hybrid needs one")
    layer = layers[first]
    if not isinstance(layer, DenseVariational) and type(layer).__name__ != "DenseVariational":
        raise ValueError(
            f"hybrid needs a dense first variational layer; {layer.name!r} is {type(layer).__name__}"
        )
    return layers[:first], layer, layers[first + 1 :]


def _hybrid_runner(model, s, from_logits):
    per_model = _HYBRID_RUNNERS.setdefault(model, {})
    if (s, from_logits) in per_model:
        return per_model[(s, from_logits)]
    before, first, after = _hybrid_split(model, from_logits)

    @tf.function(reduce_retracing=True)
    def run(xb, ew, vw, seed):
        h = xb
        for layer in before:
            h = layer(h, training=False)
        m = tf.matmul(h, ew)
        sd = tf.sqrt(tf.matmul(h * h, vw))
        if first.use_bias:
            m = m + first.bias
        eps = tf.random.stateless_normal(tf.concat([[s], tf.shape(m)], 0), seed, dtype=m.dtype)
        z = tf.reshape(m[None] + sd[None] * eps, (-1, m.shape[-1]))
        h = first.activation(z) if first.activation is not None else z
        for layer in after:  # S weight samples per layer, one per block of rows, as in predict_mc
            h = layer(h, training=False)
        if from_logits:
            h = tf.nn.softmax(h, axis=-1)
        return tf.reshape(h, (s, -1, h.shape[-1]))

    per_model[(s, from_logits)] = run
    return run


def predict_hybrid(model, x, num_samples=30, batch_size=None, from_logits=False, seed=None, noise="gaussian"):
    """Softmax samples ``[S, N, C]`` with the first variational layer's pre-activations drawn from their exact moments."""
    x = _check_inputs(model, x)
    s = int(num_samples)
    if batch_size is None:
        batch_size = max(1, 32768 // s)
    _, first, after = _hybrid_split(model, from_logits)
    if seed is not None:  # same per-layer reseeding as predict_mc, so the later layers draw alike
        variational = [l for l in model._flatten_layers() if moments.is_variational(l)]
        for i, layer in enumerate(variational):
            layer.reseed(int(seed) * 1000 + i)
    base = 0 if seed is None else int(seed)
    ew, vw = moments.layer_weight_moments(first, noise)
    ew, vw = tf.constant(ew, tf.float32), tf.constant(vw, tf.float32)
    run = _hybrid_runner(model, s, bool(from_logits))
    chunks = []
    with sample_groups(s):
        for j, i in enumerate(range(0, len(x), batch_size)):
            seed_t = tf.constant([base, j], tf.int64) if seed is not None else tf.random.uniform(
                (2,), maxval=2**31 - 1, dtype=tf.int64)
            chunks.append(run(tf.constant(x[i : i + batch_size]), ew, vw, seed_t).numpy())
    if not chunks:
        raise ValueError("`x` is empty")
    return np.concatenate(chunks, axis=1)


# -- the public entry point ------------------------------------------------------------------
def predict_probs(model, x, method="mc", num_samples=30, batch_size=None, from_logits=False, seed=None,
                  noise="gaussian", softplus_order=32, covariance="diagonal"):
    """Softmax samples ``[S, N, C]`` by ``method`` (``"mc"``, ``"hybrid"`` or ``"pfp"``); see the module docstring.

    With ``seed`` the draws are reproducible and the layers' random state is left as it was."""
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {list(METHODS)}; received method={method!r}")
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
        raise ValueError(f"`num_samples` must be a positive integer; received num_samples={num_samples!r}")
    if method == "mc":
        return predict_mc(model, x, num_samples, batch_size=batch_size, from_logits=from_logits, seed=seed)
    if method == "hybrid":  # a seed reseeds the layers for this call only
        layers = [l for l in model._flatten_layers() if moments.is_variational(l)] if seed is not None else []
        with preserved_random_state(layers):
            return predict_hybrid(model, x, num_samples, batch_size, from_logits, seed, noise)
    return predict_pfp(model, x, num_samples, from_logits, seed, noise, softplus_order, covariance=covariance)


def predict_uncertainty(model, x, method="mc", num_samples=30, batch_size=None, from_logits=False, seed=None,
                        noise="gaussian", softplus_order=32, covariance="diagonal", estimator=None):
    """Predictive uncertainty of a Bayesian model by Monte Carlo, the hybrid, or the probabilistic forward pass.

    Args:
        model: a Keras model (a chain of layers) with probability outputs (or logits
            with ``from_logits=True``).
        x: inputs ``(N, ...)``.
        method: ``"mc"`` (S full weight samples), ``"hybrid"`` (exact first-layer
            moments, later layers sampled) or ``"pfp"`` (moments through every layer,
            S samples of the logits only).
        num_samples: S.
        seed: reproducible draws if given; the model's random state is left as it was, so
            later calls are unaffected.
        noise: ``"gaussian"`` or ``"sampler"``: the eps model behind the exact
            quantized-weight moments (`tfqbnn.moments`).
        softplus_order: quadrature nodes for SoftPlus moment matching (PFP).
        covariance: PFP only: ``"diagonal"`` (independent units, as arXiv 2511.23440) or
            ``"full"`` (also the covariances between units; dense layers).
        estimator: how the predictive entropy and the mutual information are estimated from
            the S samples (`tfqbnn.estimators`): ``"plugin"`` (biased low at small S: -9 % MI
            on Fashion-MNIST at S = 30), ``"jackknife"`` or ``"delta"`` (bias-corrected).
            None: `tfqbnn.estimators.DEFAULT_ESTIMATOR`, the one closest to the S = 1000
            truth at S = 30 on the truth test (``results/truth_test``).

    Returns:
        dict of float64 arrays as `tfqbnn.uncertainty.decompose`: ``mean_probs``
        ``[N, C]``, ``predictive_entropy``, ``aleatoric`` (expected entropy),
        ``epistemic`` (mutual information), each ``[N]``; plus ``seconds`` and ``estimator``.
    """
    from tfqbnn import estimators

    estimator = estimators.check_estimator(estimator)
    t = time.perf_counter()
    probs = predict_probs(model, x, method, num_samples, batch_size, from_logits, seed, noise, softplus_order,
                          covariance)
    out = decompose(probs, estimator)
    out["estimator"] = estimator
    out["seconds"] = time.perf_counter() - t
    return out
