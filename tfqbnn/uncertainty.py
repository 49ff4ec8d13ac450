"""Monte-Carlo prediction and the split of predictive uncertainty.

For S softmax samples ``p_s`` of one input:

* ``predictive_entropy`` = H[mean_s p_s] (the paper's "softmax entropy"; total uncertainty)
* ``aleatoric``          = mean_s H[p_s] (expected entropy)
* ``epistemic``          = predictive_entropy - aleatoric (mutual information between
  the label and the weights)

All in nats.
"""

from __future__ import annotations

import contextlib
import weakref

import keras
import numpy as np
import tensorflow as tf

from qbnn_safeio import check_num_samples, check_seed
from tfqbnn.layers import VariationalLayer, sample_groups

_EPS = 1e-12


def _check_inputs(model, x):
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise ValueError(f"`x` must be real numbers; received dtype {x.dtype}"
                         + (" (complex: the imaginary part would be dropped)" if np.iscomplexobj(x) else ""))
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
    if x.shape[0] == 0:
        raise ValueError("`x` is empty")
    check_finite_weights(model)
    return x


def check_finite_weights(model):
    """One-line ValueError naming the first layer whose weights hold NaN or inf (a model that would predict NaN)."""
    seen = set()
    for layer in model._flatten_layers(include_self=False):
        for w in layer.weights:
            if id(w) in seen:
                continue
            seen.add(id(w))
            v = np.asarray(w)
            if np.issubdtype(v.dtype, np.floating) and not np.all(np.isfinite(v)):
                bad = int(v.size - np.count_nonzero(np.isfinite(v)))
                raise ValueError(f"layer {layer.name!r}: weight {w.name!r} holds {bad} non-finite values (NaN or inf); "
                                 "the model cannot predict")


# Bytes of sampled weights (plus eps and pre-quantization copies) one traced call may hold.
SAMPLE_MEMORY_BUDGET = 64 * 2**20


def predict_mc(model, x, num_samples=30, batch_size=None, from_logits=False, seed=None,
               max_samples_per_call=None, independent=False):
    """Monte-Carlo predictions of a Bayesian model.

    Runs ``num_samples`` stochastic forward passes, vectorised: every variational
    layer draws the weight samples of a chunk of samples in one call and treats
    its batch as one block per sample.  In a flat Sequential / chain model the
    layers before the first variational one (a deterministic feature extractor)
    run once per input and chunk, and that layer applies its kernels to their
    output; otherwise (branches, nested models) the input is tiled (see
    `mc_entry_layer`).  Memory is bounded in S: besides the returned
    ``S * N * C`` float32 array (`mc_chunks` yields it a chunk at a time), one call holds the sampled weights of at most
    ``max_samples_per_call`` samples (by default as many as fit in
    `SAMPLE_MEMORY_BUDGET`, 64 MiB, at three float32 copies per weight) and the
    activations of ``max_samples_per_call * batch_size`` rows.

    Args:
        model: a Keras model whose outputs are class probabilities (or logits with
            ``from_logits=True``).
        x: array ``(N, ...)`` matching the model's input.
        num_samples: S, number of weight samples (1..65536, the C runtime's bound).
        batch_size: images per forward pass (default: chosen so that a call's
            samples * batch rows stay around 32k).
        from_logits: apply a softmax to the model's outputs.
        seed: if given (a 32-bit integer), the draws are reproducible: every variational
            layer is reseeded for this call and its random state restored afterwards
            (no effect on later calls).
        max_samples_per_call: samples drawn per traced call (default: from the
            memory budget).  Each call draws fresh weights.
        independent: if True, every image gets its own S weight draws (a
            ``[S, N, C]`` result whose images are independent given the model);
            by default the images of one forward pass share each of the S draws,
            which is as exact per image and far cheaper (the weights are sampled
            once per pass, not once per image) but correlates the images' errors,
            so set-level means vary more between runs.  Costs S * N weight
            samples; ``max_samples_per_call`` then bounds samples x images per call.

    Returns:
        float32 array ``(S, N, C)`` of softmax probabilities.
    """
    out = None
    for s0, probs in mc_chunks(model, x, num_samples, batch_size, from_logits, seed, max_samples_per_call,
                               independent):
        if out is None:
            out = np.empty((int(num_samples),) + probs.shape[1:], np.float32)
        out[s0 : s0 + len(probs)] = probs
    return out


def sample_chunk(num_samples, max_samples_per_call, weights):
    """Samples per traced call: ``max_samples_per_call``, or as many as keep three float32 copies of the sampled
    ``weights`` within `SAMPLE_MEMORY_BUDGET`; the checked S and that chunk size."""
    s = check_num_samples(num_samples)
    if max_samples_per_call is not None and (
            isinstance(max_samples_per_call, bool) or not isinstance(max_samples_per_call, (int, np.integer))
            or max_samples_per_call < 1):
        raise ValueError("`max_samples_per_call` must be a positive integer or None; "
                         f"received max_samples_per_call={max_samples_per_call!r}")
    if max_samples_per_call is None:
        max_samples_per_call = max(1, SAMPLE_MEMORY_BUDGET // (12 * max(weights, 1)))
    return s, min(s, int(max_samples_per_call))


def reseed(model, seed, is_variational=lambda l: isinstance(l, VariationalLayer)):
    """Reseeds every variational layer from one 32-bit seed (reproducible draws)."""
    seed = check_seed(seed)
    for i, layer in enumerate(l for l in model._flatten_layers() if is_variational(l)):
        layer.reseed(seed * 1000 + i)


def mc_chunks(model, x, num_samples=30, batch_size=None, from_logits=False, seed=None, max_samples_per_call=None,
              independent=False):
    """`predict_mc` one chunk of samples at a time: yields ``(first sample index, probs [k, N, C])``. With a seed,
    the layers' random state is restored when the generator finishes (or is closed)."""
    x = _check_inputs(model, x)
    n = x.shape[0]
    variational = [l for l in model._flatten_layers() if isinstance(l, VariationalLayer)]
    weights = sum(int(np.prod(l.mu.shape)) for l in variational if l.built)
    s, chunk = sample_chunk(num_samples, max_samples_per_call, weights)
    if batch_size is None:
        batch_size = max(1, _rows_per_call(model) // chunk)
    if int(batch_size) < 1:
        raise ValueError(f"`batch_size` must be >= 1; received batch_size={batch_size}")
    batch_size = int(batch_size)
    if independent:  # one weight draw per (sample, image): a call's draws (samples x images) within the budget
        limit = int(max_samples_per_call) if max_samples_per_call else SAMPLE_MEMORY_BUDGET // (12 * max(weights, 1))
        batch_size = max(1, limit // chunk)
    if seed is not None:
        seed = check_seed(seed)
    entry = None if independent else mc_entry_layer(model)
    with reseeded(variational, seed):
        for s0 in range(0, s, chunk):
            k = min(chunk, s - s0)
            parts = []
            for i in range(0, n, batch_size):
                xb = x[i : i + batch_size]
                groups = k * len(xb) if independent else k
                run = _runner(model, k, bool(from_logits), entry is not None, groups)
                with sample_groups(groups, [entry] if entry is not None else ()):  # read when `run` traces
                    parts.append(run(tf.constant(xb)).numpy())
            yield s0, np.concatenate(parts, axis=1)


@contextlib.contextmanager
def preserved_random_state(layers):
    """Restores the random state of every built layer in ``layers`` (variational layers) when the context ends."""
    layers = [l for l in layers if getattr(l, "_rng", None) is not None]
    saved = [l._rng.state.numpy() for l in layers]
    try:
        yield
    finally:
        for layer, state in zip(layers, saved):
            layer._rng.state.assign(state)


@contextlib.contextmanager
def reseeded(variational_layers, seed):
    """Within the context, layer i of ``variational_layers`` draws from seed ``seed * 1000 + i``; afterwards each
    layer's random state is what it was before (``seed=None``: nothing changes)."""
    if seed is None:
        yield
        return
    with preserved_random_state(variational_layers):
        for i, layer in enumerate(variational_layers):
            layer.reseed(int(seed) * 1000 + i)
        yield


_RUNNERS = weakref.WeakKeyDictionary()
# Rows (samples x images) per traced call: 32k, fewer when a layer's output per row is large
# (a LeNet's first convolution: 4704 floats a row), so no activation exceeds 2**26 floats (256 MiB).
_MAX_ROWS, _MAX_ACTIVATION = 32768, 2**26


def _rows_per_call(model):
    widest = 1
    for layer in model.layers:
        try:
            shape = layer.output.shape
        except (AttributeError, ValueError):  # subclassed models, layers used twice
            continue
        widest = max(widest, int(np.prod([d for d in shape[1:] if d is not None])))
    return max(1, min(_MAX_ROWS, _MAX_ACTIVATION // widest))


def is_chain(model):
    """Whether ``model`` is a Sequential, or a functional model whose every layer takes the previous one's output."""
    layers = [l for l in model.layers if not isinstance(l, keras.layers.InputLayer)]
    if isinstance(model, keras.Sequential):
        return True
    if not (isinstance(getattr(model, "inputs", None), list) and len(model.inputs) == 1 and layers):
        return False
    try:
        prev = model.inputs[0]
        for l in layers:
            if l.input is not prev:
                return False
            prev = l.output
    except (AttributeError, ValueError):  # a layer used twice or not connected
        return False
    return True


def mc_entry_layer(model):
    """The variational layer where `predict_mc` starts repeating, or None to tile the input.

    For a flat chain (a Sequential, or a functional model whose every layer takes
    the previous layer's output) it is the first `VariationalLayer`: the layers
    before it are deterministic and run once.  Models with branches, several
    inputs or nested models containing variational layers return None.
    """
    if not is_chain(model):
        return None
    layers = [l for l in model.layers if not isinstance(l, keras.layers.InputLayer)]
    for l in layers:
        if isinstance(l, VariationalLayer):
            return l
        if any(isinstance(m, VariationalLayer) for m in l._flatten_layers(include_self=False)):
            return None  # inside a nested model: tile the input
    return None


def _runner(model, s, from_logits, shared_entry, groups=None):
    """One traced function per (model, S, weight draws per call): repeated calls do not retrace."""
    per_model = _RUNNERS.setdefault(model, {})
    key = (s, from_logits, shared_entry) if groups in (None, s) else (s, from_logits, shared_entry, groups)
    if key not in per_model:

        @tf.function(reduce_retracing=True)
        def run(xb):
            # with a shared entry layer the prefix sees B rows and that layer emits S * B
            tiled = xb if shared_entry else tf.tile(xb, [s] + [1] * (len(xb.shape) - 1))
            out = model(tiled, training=False)
            if from_logits:
                out = tf.nn.softmax(out, axis=-1)
            return tf.reshape(out, (s, -1, out.shape[-1]))

        per_model[key] = run
    return per_model[key]


def entropy(p, axis=-1):
    """Shannon entropy in nats along ``axis``."""
    p = np.asarray(p, dtype=np.float64)
    return -np.sum(p * np.log(np.clip(p, _EPS, 1.0)), axis=axis)


def decompose(probs, estimator="plugin"):
    """Split the uncertainty of Monte-Carlo softmax samples ``[S, N, C]``.

    Returns a dict of float64 ``[N]`` arrays: ``predictive_entropy``, ``aleatoric``,
    ``epistemic`` (= predictive_entropy - aleatoric) and ``mean_probs`` ``[N, C]``.
    ``estimator`` (`tfqbnn.estimators`): ``"plugin"`` (the textbook split, MI clipped at 0
    against rounding; biased low at small S), ``"jackknife"`` or ``"delta"`` (bias-corrected
    predictive entropy and MI, not clipped).
    """
    from tfqbnn import estimators

    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 3 or probs.shape[0] == 0:
        raise ValueError(f"`probs` must have shape (S, N, C) with S >= 1; received shape {probs.shape}")
    _check_probabilities(probs)
    return estimators.decompose(probs, estimator)


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
