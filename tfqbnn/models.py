"""The paper's models (a bias-free SoftPlus MLP) and a LeNet-5, Bayesian, partial-Bayesian and deterministic."""

from __future__ import annotations

import keras
import numpy as np

from tfqbnn.config import QuantizationConfig
from tfqbnn.layers import (ClipWeights, Conv2DVariational, DenseVariational,
                           QuantizedConv2D, QuantizedDense, QuantizedDepthwiseConv2D, VariationalLayer)
from tfqbnn.priors import softplus_inverse

ARCHS = ("mlp", "lenet5")
BAYESIAN = ("all", "head")


def _check_hidden(hidden, num_classes, input_dim):
    hidden = tuple(hidden)
    for name, v in [("num_classes", num_classes), ("input_dim", input_dim)] + [
        (f"hidden[{i}]", h) for i, h in enumerate(hidden)
    ]:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
            raise ValueError(f"`{name}` must be a positive integer; received {name}={v!r}")
    return hidden


def per_layer_quantization(quantization, names, where="quantization"):
    """One `QuantizationConfig` per variational layer, in model order.

    ``quantization`` is one config for every layer (a `QuantizationConfig`, a shorthand string, a config dict
    with a ``"strategy"`` key, or None), a list / tuple with one entry per layer, or a dict from layer name to
    config that names every layer in ``names``.
    """
    names = list(names)
    if isinstance(quantization, dict) and "strategy" not in quantization:
        unknown = sorted(set(quantization) - set(names))
        missing = [n for n in names if n not in quantization]
        if unknown or missing:
            raise ValueError(f"`{where}` by layer name must name exactly the variational layers {names}; "
                             f"received keys {sorted(map(str, quantization))}")
        return [QuantizationConfig.get(quantization[n]) for n in names]
    if isinstance(quantization, (list, tuple)):
        if len(quantization) != len(names):
            raise ValueError(f"`{where}` needs one config per variational layer ({len(names)}: {names}); "
                             f"received {len(quantization)} configs")
        return [QuantizationConfig.get(q) for q in quantization]
    q = QuantizationConfig.get(quantization)
    return [q] * len(names)


def mlp(
    hidden=(100, 100),
    num_classes=10,
    activation="softplus",
    quantization=None,
    input_dim=784,
    num_examples=None,
    prior_std=1.0,
    init_sigma=5e-3,
    rho_scale=10.0,
    seed=None,
    name=None,
):
    """The paper's Bayesian MLP: bias-free `DenseVariational` layers, softmax output.

    Args:
        hidden: hidden layer widths.
        num_classes: output classes.
        activation: hidden activation (the paper: ``"softplus"``).
        quantization: `QuantizationConfig` or shorthand (``"fp32"``, ``"jq4"``, ...)
            applied to every layer, or one per layer: a list / tuple in layer order or a
            dict by layer name (``"bayes_0"``, ...), see `per_layer_quantization`.
        input_dim: flattened input size (784 for MNIST; inputs in [0, 1]).
        num_examples: training-set size N (the KL is divided by it).
        prior_std: see `DenseVariational`.
        init_sigma: see `DenseVariational`.
        rho_scale: see `DenseVariational`.
        seed: base seed; layer i uses ``seed + i``.

    Returns:
        An uncompiled `keras.Sequential` that outputs class probabilities.
    """
    hidden = _check_hidden(hidden, num_classes, input_dim)
    sizes = hidden + (num_classes,)
    configs = per_layer_quantization(quantization, [f"bayes_{i}" for i in range(len(sizes))])
    layers = [keras.Input((input_dim,))]
    for i, units in enumerate(sizes):
        layers.append(
            DenseVariational(
                units,
                activation=activation if i < len(hidden) else None,
                quantization=configs[i],
                prior_std=prior_std,
                num_examples=num_examples,
                init_sigma=init_sigma,
                rho_scale=rho_scale,
                seed=None if seed is None else seed + i,
                name=f"bayes_{i}",
            )
        )
    layers.append(keras.layers.Softmax(name="probs"))
    return keras.Sequential(layers, name=name or "qbnn_mlp")


def deterministic_mlp(hidden=(100, 100), num_classes=10, activation="softplus", input_dim=784, seed=None,
                      name=None):
    """The pretraining twin of `mlp`: bias-free Dense layers, kernels clipped to [-1, 1]."""
    hidden = _check_hidden(hidden, num_classes, input_dim)
    layers = [keras.Input((input_dim,))]
    for i, units in enumerate(hidden + (num_classes,)):
        layers.append(
            keras.layers.Dense(
                units,
                activation=activation if i < len(hidden) else None,
                use_bias=False,
                kernel_constraint=ClipWeights(1.0),
                kernel_initializer=keras.initializers.GlorotUniform(seed=None if seed is None else seed + i),
                name=f"dense_{i}",
            )
        )
    layers.append(keras.layers.Softmax(name="probs"))
    return keras.Sequential(layers, name=name or "det_mlp")


LENET_INPUT = (28, 28, 1)


def _lenet_layers(input_dim):
    if input_dim == 784:
        return [keras.Input((784,)), keras.layers.Reshape(LENET_INPUT, name="image")]
    if isinstance(input_dim, (tuple, list)) and tuple(input_dim) == LENET_INPUT:
        return [keras.Input(LENET_INPUT)]
    raise ValueError(f"`input_dim` must be 784 (flat MNIST) or (28, 28, 1); received input_dim={input_dim!r}")


# (kind, size, kernel, padding): conv 6@5x5 -> pool -> conv 16@5x5 -> pool -> dense 120 -> 84 -> 10
_LENET = (("conv", 6, 5, "same"), ("pool",), ("conv", 16, 5, "valid"), ("pool",), ("flatten",),
          ("dense", 120), ("dense", 84), ("dense", None))
_LENET_WEIGHTED = 5
_LENET_HEAD = 2  # "head": the last two dense layers are variational


def lenet5(bayesian="all", quantization=None, deterministic_bits=None, per_channel=True, num_classes=10,
           activation="softplus", input_dim=784, num_examples=None, prior_std=1.0, init_sigma=5e-3,
           rho_scale=10.0, seed=None, name=None):
    """LeNet-5 on 28x28x1 images, bias-free, SoftPlus, fully or partially Bayesian.

    conv 6@5x5 ("same") -> max-pool 2 -> conv 16@5x5 -> max-pool 2 -> dense 120 -> 84 -> 10
    -> softmax (the classic 400-input C5).

    Args:
        bayesian: ``"all"`` (every conv / dense layer variational) or ``"head"``
            (only the last two dense layers; the rest deterministic, so
            `predict_mc` runs it once per input, not once per sample).
        quantization: `QuantizationConfig` or shorthand of the variational layers, or one per
            variational layer (a list / tuple in model order, or a dict by layer name such as
            ``"bayes_conv_0"``; see `per_layer_quantization`).
        deterministic_bits: with ``"head"``, bits of the deterministic layers'
            kernels (`QuantizedConv2D` / `QuantizedDense`, QAT); None keeps them float.
        per_channel: per-output-channel scales for those quantized kernels.
        input_dim: 784 (flat MNIST arrays, reshaped inside the model, so the data
            pipeline is the MLP's) or ``(28, 28, 1)``.
        num_examples: see `VariationalLayer`.
        prior_std: see `VariationalLayer`.
        init_sigma: see `VariationalLayer`.
        rho_scale: see `VariationalLayer`.
        seed: base seed; weighted layer i uses ``seed + i``.

    Returns:
        An uncompiled `keras.Sequential` that outputs class probabilities.
    """
    if bayesian not in BAYESIAN:
        raise ValueError(f"`bayesian` must be one of {list(BAYESIAN)}; received bayesian={bayesian!r}")
    if deterministic_bits is not None and bayesian == "all":
        raise ValueError("`deterministic_bits` applies to bayesian='head' only (with 'all' every weighted layer "
                         f"is variational); received deterministic_bits={deterministic_bits!r}")
    first_bayes = 0 if bayesian == "all" else _LENET_WEIGHTED - _LENET_HEAD
    weighted = [s[0] for s in _LENET if s[0] in ("conv", "dense")]
    names = [f"bayes_{kind}_{i}" for i, kind in enumerate(weighted) if i >= first_bayes]
    variational = dict(quantization=per_layer_quantization(quantization, names), prior_std=prior_std,
                       num_examples=num_examples, init_sigma=init_sigma, rho_scale=rho_scale)
    return _lenet(first_bayes, variational, deterministic_bits, per_channel, num_classes, activation, input_dim,
                  seed, name or f"qbnn_lenet5_{bayesian}")


def deterministic_lenet5(num_classes=10, activation="softplus", input_dim=784, seed=None, name=None):
    """The pretraining twin of `lenet5`: bias-free float Conv2D / Dense, kernels clipped to [-1, 1]."""
    return _lenet(_LENET_WEIGHTED, {}, None, True, num_classes, activation, input_dim, seed, name or "det_lenet5")


def _lenet(first_bayes, variational, deterministic_bits, per_channel, num_classes, activation, input_dim, seed,
           name):
    """LeNet-5 whose weighted layers from index ``first_bayes`` on are variational."""
    _check_hidden((), num_classes, 1)
    layers = _lenet_layers(input_dim)
    i = pools = 0
    for spec in _LENET:
        kind = spec[0]
        if kind == "pool":
            layers.append(keras.layers.MaxPooling2D(2, name=f"pool_{pools}"))
            pools += 1
            continue
        if kind == "flatten":
            layers.append(keras.layers.Flatten(name="flatten"))
            continue
        size = spec[1] or num_classes
        act = activation if spec[1] else None
        layer_seed = None if seed is None else seed + i
        if i >= first_bayes:
            common = dict(activation=act, seed=layer_seed, name=f"bayes_{kind}_{i}",
                          **{**variational, "quantization": variational["quantization"][i - first_bayes]})
            layer = (Conv2DVariational(size, spec[2], padding=spec[3], **common) if kind == "conv"
                     else DenseVariational(size, **common))
        else:
            common = dict(activation=act, use_bias=False, kernel_constraint=ClipWeights(1.0),
                          kernel_initializer=keras.initializers.GlorotUniform(seed=layer_seed), name=f"{kind}_{i}")
            if deterministic_bits is not None:
                common.update(kernel_bits=deterministic_bits, per_channel=per_channel)
                layer = (QuantizedConv2D(size, spec[2], padding=spec[3], **common) if kind == "conv"
                         else QuantizedDense(size, **common))
            else:
                layer = (keras.layers.Conv2D(size, spec[2], padding=spec[3], **common) if kind == "conv"
                         else keras.layers.Dense(size, **common))
        layers.append(layer)
        i += 1
    layers.append(keras.layers.Softmax(name="probs"))
    return keras.Sequential(layers, name=name)


def bayesian_model(arch, bayesian="all", **kwargs):
    """`mlp` or `lenet5` by name (``bayesian="head"`` is defined for the LeNet only)."""
    if arch not in ARCHS:
        raise ValueError(f"`arch` must be one of {list(ARCHS)}; received arch={arch!r}")
    if arch == "mlp":
        if bayesian != "all":
            raise ValueError(f"bayesian={bayesian!r} is defined for arch='lenet5' only; the MLP is fully Bayesian")
        kwargs.pop("deterministic_bits", None)
        return mlp(**kwargs)
    return lenet5(bayesian, **kwargs)


def deterministic_model(arch, **kwargs):
    """The pretraining twin of `bayesian_model(arch, ...)`."""
    if arch not in ARCHS:
        raise ValueError(f"`arch` must be one of {list(ARCHS)}; received arch={arch!r}")
    return deterministic_mlp(**kwargs) if arch == "mlp" else deterministic_lenet5(**kwargs)


# Keras' weighted layer kinds (a variational layer names its own twin: `keras_class`)
_WEIGHTED = (keras.layers.DepthwiseConv2D, keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D,
             keras.layers.Dense)


def _source_kind(layer):
    return next((k for k in _WEIGHTED if isinstance(layer, k)), None)


def _target_kind(layer):
    if isinstance(layer, VariationalLayer):
        return getattr(type(layer), "keras_class", None)
    return _source_kind(layer)


def _check_not_nested(model, fn):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            inner = [l.name for l in layer._flatten_layers(include_self=False)
                     if isinstance(l, (VariationalLayer,) + _WEIGHTED)]
            if inner:
                raise ValueError(f"{fn}: layer {inner[0]!r} is inside the nested model {layer.name!r}; "
                                 "use a flat Sequential or functional model")


def init_from_deterministic(bnn, det, init_sigma=None):
    """Copy a pretrained deterministic model into a (partially) Bayesian one of the same structure.

    Weighted layers are paired in order, each variational layer with its `keras_class` (``Dense ->
    DenseVariational``, ``Conv1D / Conv2D / Conv3D -> Conv1DVariational / ...``, ``DepthwiseConv2D ->
    DepthwiseConv2DVariational``)
    (a deterministic layer of ``bnn``, e.g. `QuantizedConv2D`, takes the kernel as is).
    For a variational layer ``mu`` <- the kernel (clipped to the layer's ``mu_limit``),
    ``sigma`` <- ``init_sigma`` (default: each layer's own ``init_sigma``).
    """
    _check_not_nested(bnn, "init_from_deterministic")
    _check_not_nested(det, "init_from_deterministic")
    targets = [l for l in bnn.layers if _target_kind(l) is not None]
    sources = [l for l in det.layers if _source_kind(l) is not None]
    if len(targets) != len(sources):
        raise ValueError(
            f"init_from_deterministic: {len(targets)} weighted layers in {bnn.name!r} vs {len(sources)} in {det.name!r}"
        )
    for b, d in zip(targets, sources):
        if _target_kind(b) is not _source_kind(d):
            raise ValueError(f"init_from_deterministic: layer {b.name} ({type(b).__name__}) cannot be initialised "
                             f"from {d.name} ({type(d).__name__})")
        kernel = np.asarray(d.kernel)
        target = b.mu if isinstance(b, VariationalLayer) else b.kernel
        if tuple(kernel.shape) != tuple(target.shape):
            raise ValueError(
                f"init_from_deterministic: layer {b.name} has kernel shape {tuple(target.shape)}, "
                f"{d.name} has kernel shape {tuple(kernel.shape)}"
            )
        if b.use_bias and d.use_bias:
            b.bias.assign(np.asarray(d.bias))
        if not isinstance(b, VariationalLayer):
            b.kernel.assign(kernel)
            continue
        b.mu.assign(np.clip(kernel, -b.mu_limit, b.mu_limit))
        sigma = b.init_sigma if init_sigma is None else float(init_sigma)
        b.rho.assign(np.full(kernel.shape, softplus_inverse(sigma) / b.rho_scale, np.float32))
    return bnn
