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

import keras
import numpy as np
import tensorflow as tf

from tfqbnn.layers import VariationalLayer, sample_groups

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
    if not np.all(np.isfinite(x)):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise ValueError(f"`x` contains {bad} non-finite values (NaN or inf)")
    return x.astype(np.float32, copy=False)


def predict_mc(model, x, num_samples=30, batch_size=None, from_logits=False, seed=None):
    """Monte-Carlo predictions of a Bayesian model.

    Runs ``num_samples`` stochastic forward passes, vectorised in one traced call:
    every variational layer draws S weight samples at once and treats its batch as
    S blocks.  In a flat Sequential / chain model the layers before the first
    variational one (a deterministic feature extractor) run once per input, and
    that layer applies its S kernels to their output; otherwise (branches, nested
    models) the input is tiled S times.  See `mc_entry_layer`.

    Args:
        model: a Keras model whose outputs are class probabilities (or logits with
            ``from_logits=True``).
        x: array ``(N, ...)`` matching the model's input.
        num_samples: S, number of weight samples (>= 1).
        batch_size: images per forward pass (default: chosen so that S * batch
            rows stay around 32k).
        from_logits: apply a softmax to the model's outputs.
        seed: if given, reseeds every variational layer (reproducible runs).

    Returns:
        float32 array ``(S, N, C)`` of softmax probabilities.
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
        raise ValueError(f"`num_samples` must be a positive integer; received num_samples={num_samples!r}")
    x = _check_inputs(model, x)
    n = x.shape[0]
    if batch_size is None:
        batch_size = max(1, 32768 // int(num_samples))
    if int(batch_size) < 1:
        raise ValueError(f"`batch_size` must be >= 1; received batch_size={batch_size}")
    if seed is not None:
        for i, layer in enumerate(l for l in model._flatten_layers() if isinstance(l, VariationalLayer)):
            layer.reseed(int(seed) * 1000 + i)
    s = int(num_samples)

    entry = mc_entry_layer(model)
    run = _runner(model, s, bool(from_logits), entry is not None)
    with sample_groups(s, [entry] if entry is not None else ()):  # read by the layers when `run` traces
        chunks = [run(tf.constant(x[i : i + batch_size])).numpy() for i in range(0, n, batch_size)]
    if not chunks:
        raise ValueError("`x` is empty")
    return np.concatenate(chunks, axis=1)


_RUNNERS = weakref.WeakKeyDictionary()


def mc_entry_layer(model):
    """The variational layer where `predict_mc` starts repeating, or None to tile the input.

    For a flat chain (a Sequential, or a functional model whose every layer takes
    the previous layer's output) it is the first `VariationalLayer`: the layers
    before it are deterministic and run once.  Models with branches, several
    inputs or nested models containing variational layers return None.
    """
    layers = [l for l in model.layers if not isinstance(l, keras.layers.InputLayer)]
    if isinstance(model, keras.Sequential):
        chain = True
    elif isinstance(getattr(model, "inputs", None), list) and len(model.inputs) == 1 and layers:
        try:
            prev = model.inputs[0]
            chain = True
            for l in layers:
                if l.input is not prev:
                    chain = False
                    break
                prev = l.output
        except (AttributeError, ValueError):  # a layer used twice or not connected
            chain = False
    else:
        chain = False
    if not chain:
        return None
    for l in layers:
        if isinstance(l, VariationalLayer):
            return l
        if any(isinstance(m, VariationalLayer) for m in l._flatten_layers(include_self=False)):
            return None  # inside a nested model: tile the input
    return None


def _runner(model, s, from_logits, shared_entry):
    """One traced function per (model, S): repeated calls do not retrace."""
    per_model = _RUNNERS.setdefault(model, {})
    if (s, from_logits, shared_entry) not in per_model:

        @tf.function(reduce_retracing=True)
        def run(xb):
            # with a shared entry layer the prefix sees B rows and that layer emits S * B
            tiled = xb if shared_entry else tf.tile(xb, [s] + [1] * (len(xb.shape) - 1))
            out = model(tiled, training=False)
            if from_logits:
                out = tf.nn.softmax(out, axis=-1)
            return tf.reshape(out, (s, -1, out.shape[-1]))

        per_model[(s, from_logits, shared_entry)] = run
    return per_model[(s, from_logits, shared_entry)]


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
    mean = probs.mean(axis=0)
    total = entropy(mean)
    aleatoric = entropy(probs).mean(axis=0)
    return {
        "mean_probs": mean,
        "predictive_entropy": total,
        "aleatoric": aleatoric,
        "epistemic": np.maximum(total - aleatoric, 0.0),
    }


def auroc(in_scores, out_scores):
    """AUROC of separating ``out`` (positive) from ``in`` by a score (higher = more uncertain)."""
    from sklearn.metrics import roc_auc_score

    a, b = np.ravel(in_scores), np.ravel(out_scores)
    if a.size == 0 or b.size == 0:
        raise ValueError(f"auroc needs non-empty score sets; received sizes {a.size} and {b.size}")
    y = np.concatenate([np.zeros(a.size), np.ones(b.size)])
    return float(roc_auc_score(y, np.concatenate([a, b])))
