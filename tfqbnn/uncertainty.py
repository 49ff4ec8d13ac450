"""Monte-Carlo prediction and the split of predictive uncertainty.

For S softmax samples ``p_s`` of one input:

* ``predictive_entropy`` = H[mean_s p_s] (the paper's "softmax entropy"; total uncertainty)
* ``aleatoric``          = mean_s H[p_s] (expected entropy)
* ``epistemic``          = predictive_entropy - aleatoric (mutual information between
  the label and the weights)

All in nats.
"""

from __future__ import annotations

import weakref

import numpy as np
import tensorflow as tf

from tfqbnn.layers import DenseVariational, sample_groups

_EPS = 1e-12


def _check_inputs(model, x):
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"`x` must be numeric; received dtype {x.dtype}")
    expected = model.inputs[0].shape if getattr(model, "inputs", None) else None
    if expected is not None:
        if x.ndim != len(expected):
            raise ValueError(
                f"`x` must have rank {len(expected)} (shape (N, {', '.join(str(d) for d in expected[1:])})); "
                f"received shape {x.shape}"
            )
        for axis, (got, want) in enumerate(zip(x.shape[1:], expected[1:]), start=1):
            if want is not None and got != want:
                raise ValueError(f"`x` has size {got} on axis {axis}, the model expects {want}; received shape {x.shape}")
    x = x.astype(np.float32, copy=False)  # checked after the cast: 1e300 is finite in float64, inf here
    if not np.all(np.isfinite(x)):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise ValueError(f"`x` contains {bad} non-finite values (NaN or inf) as float32")
    return x


# Bytes of sampled weights (plus eps and pre-quantization copies) one traced call may hold.
SAMPLE_MEMORY_BUDGET = 64 * 2**20


def predict_mc(model, x, num_samples=30, batch_size=None, from_logits=False, seed=None,
               max_samples_per_call=None):
    """Monte-Carlo predictions of a Bayesian model.

    Runs ``num_samples`` stochastic forward passes, vectorised: each batch is tiled
    for a chunk of samples and every `DenseVariational` layer draws one weight
    sample per tile in one call.  Memory is bounded in S: besides the returned
    ``S * N * C`` float32 array, one call holds the sampled weights of at most
    ``max_samples_per_call`` samples (by default as many as fit in
    `SAMPLE_MEMORY_BUDGET`, 64 MiB, at three float32 copies per weight) and the
    activations of ``max_samples_per_call * batch_size`` rows.

    Args:
        model: a Keras model whose outputs are class probabilities (or logits with
            ``from_logits=True``).
        x: array ``(N, ...)`` matching the model's input.
        num_samples: S, number of weight samples (>= 1).
        batch_size: images per forward pass (default: chosen so that a call's
            samples * batch rows stay around 32k).
        from_logits: apply a softmax to the model's outputs.
        seed: if given, reseeds every `DenseVariational` layer (reproducible runs).
        max_samples_per_call: samples drawn per traced call (default: from the
            memory budget).  Each call draws fresh weights.

    Returns:
        float32 array ``(S, N, C)`` of softmax probabilities.
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
        raise ValueError(f"`num_samples` must be a positive integer; received num_samples={num_samples!r}")
    if max_samples_per_call is not None and (
            isinstance(max_samples_per_call, bool) or not isinstance(max_samples_per_call, (int, np.integer))
            or max_samples_per_call < 1):
        raise ValueError("`max_samples_per_call` must be a positive integer or None; "
                         f"received max_samples_per_call={max_samples_per_call!r}")
    x = _check_inputs(model, x)
    n = x.shape[0]
    if n == 0:
        raise ValueError("`x` is empty")
    variational = [l for l in model._flatten_layers() if isinstance(l, DenseVariational)]
    s = int(num_samples)
    if max_samples_per_call is None:
        weights = sum(int(np.prod(l.mu.shape)) for l in variational if l.built) or 1
        max_samples_per_call = max(1, SAMPLE_MEMORY_BUDGET // (12 * weights))
    chunk = min(s, int(max_samples_per_call))
    if batch_size is None:
        batch_size = max(1, 32768 // chunk)
    if int(batch_size) < 1:
        raise ValueError(f"`batch_size` must be >= 1; received batch_size={batch_size}")
    batch_size = int(batch_size)
    if seed is not None:
        for i, layer in enumerate(variational):
            layer.reseed(int(seed) * 1000 + i)

    out = None
    for s0 in range(0, s, chunk):
        k = min(chunk, s - s0)
        run = _runner(model, k, bool(from_logits))
        with sample_groups(k):  # read by the layers when `run` traces
            for i in range(0, n, batch_size):
                probs = run(tf.constant(x[i : i + batch_size])).numpy()
                if out is None:
                    out = np.empty((s, n, probs.shape[-1]), np.float32)
                out[s0 : s0 + k, i : i + batch_size] = probs
    return out


_RUNNERS = weakref.WeakKeyDictionary()


def _runner(model, s, from_logits):
    """One traced function per (model, S): repeated calls do not retrace."""
    per_model = _RUNNERS.setdefault(model, {})
    if (s, from_logits) not in per_model:

        @tf.function(reduce_retracing=True)
        def run(xb):
            tiled = tf.tile(xb, [s] + [1] * (len(xb.shape) - 1))
            out = model(tiled, training=False)
            if from_logits:
                out = tf.nn.softmax(out, axis=-1)
            return tf.reshape(out, (s, -1, out.shape[-1]))

        per_model[(s, from_logits)] = run
    return per_model[(s, from_logits)]


def entropy(p, axis=-1):
    """Shannon entropy in nats along ``axis``."""
    p = np.asarray(p, dtype=np.float64)
    return -np.sum(p * np.log(np.clip(p, _EPS, 1.0)), axis=axis)


def decompose(probs):
    """Split the uncertainty of Monte-Carlo softmax samples ``[S, N, C]``.

    Returns a dict of float64 ``[N]`` arrays: ``predictive_entropy``, ``aleatoric``,
    ``epistemic`` (= predictive_entropy - aleatoric, clipped at 0 against rounding)
    and ``mean_probs`` ``[N, C]``.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 3:
        raise ValueError(f"`probs` must have shape (S, N, C); received shape {probs.shape}")
    _check_probabilities(probs)
    mean = probs.mean(axis=0)
    total = entropy(mean)
    aleatoric = entropy(probs).mean(axis=0)
    return {
        "mean_probs": mean,
        "predictive_entropy": total,
        "aleatoric": aleatoric,
        "epistemic": np.maximum(total - aleatoric, 0.0),
    }


def _check_probabilities(probs, atol=1e-3):
    """Entropies of anything but probability vectors are meaningless (and can be negative)."""
    if not np.all(np.isfinite(probs)):
        raise ValueError("`probs` contains non-finite values; expected softmax probabilities")
    if probs.size and probs.min() < -1e-6:
        raise ValueError(f"`probs` contains negative values (min {probs.min():.3g}); expected softmax "
                         "probabilities (use from_logits=True in predict_mc for logit models)")
    sums = probs.sum(axis=-1)
    if sums.size and np.max(np.abs(sums - 1.0)) > atol:
        worst = sums.ravel()[np.argmax(np.abs(sums - 1.0))]
        raise ValueError(f"`probs` must sum to 1 along the last axis (within {atol}); found a sum of {worst:.4g}")


def auroc(in_scores, out_scores):
    """AUROC of separating ``out`` (positive) from ``in`` by a score (higher = more uncertain)."""
    from sklearn.metrics import roc_auc_score

    a, b = np.ravel(in_scores), np.ravel(out_scores)
    if a.size == 0 or b.size == 0:
        raise ValueError(f"auroc needs non-empty score sets; received sizes {a.size} and {b.size}")
    y = np.concatenate([np.zeros(a.size), np.ones(b.size)])
    return float(roc_auc_score(y, np.concatenate([a, b])))
