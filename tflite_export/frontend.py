"""Keras front end: a `keras.Sequential` of supported layers -> the IR ops of an `IntegerModel`.

`converters()` maps each supported Keras layer class to its `Registration`: the function that emits its op(s), a
small Keras example the tests run, whether it holds weights, the stock Keras class it replaces -- one entry per
layer kind. A converter gets the layer and a `_Context` (the per-example shape so far, the next Bayesian stream id, the
stored weight mode) and returns a list of IR ops; every refusal is a one-line ValueError naming the layer.

Keras and tfqbnn are imported lazily (inside the functions), so `import tflite_export` stays TensorFlow-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from tflite_export import storage
from tflite_export.intmath import sampler
from tflite_export.ir import activation as act
from tflite_export.ir.conv2d import Conv2D
from tflite_export.ir.depthwise_conv2d import DepthwiseConv2D
from tflite_export.ir.fully_connected import FullyConnected, IntegerLayer
from tflite_export.ir.global_average_pool2d import GlobalAveragePool2D
from tflite_export.ir.pool import AveragePool2D, MaxPool2D
from tflite_export.ir.reshape import Reshape
from tflite_export.ir.softmax import Softmax
from tflite_export.ir.weighted import INPUT_SCALE, INPUT_ZERO_POINT
from tflite_export.ir.weights import BayesianWeights, ConstantWeights


class _Context:
    def __init__(self, weights, shape, last_weighted):
        self.weights = weights  # "int4" | "int8": stored layout of the Bayesian codes
        self.shape = tuple(shape)  # per-example shape of the current tensor
        self.index = 0  # next Bayesian stream id (SPEC 3.1)
        self.last_weighted = last_weighted  # the weighted layer right before the final Softmax

    def where(self, layer):
        return f"layer {layer.name!r}"


def activation_name(layer):
    """The IR name of a Keras layer's fused activation, validated by `ir.activation.check`."""
    import keras

    fn = getattr(layer, "activation", None)
    if fn is None:
        return "linear"
    name = keras.activations.serialize(fn)
    if isinstance(name, dict):
        name = name.get("config", name.get("class_name"))
    return act.check(str(name), f"layer {layer.name!r}")


def _check_common(layer, ctx, *, conv=False):
    """Refusals shared by the weighted layers (biases, channels_first, dilation, groups, activation)."""
    where = ctx.where(layer)
    if getattr(layer, "use_bias", False):
        raise ValueError(f"{where}: biases are not supported (use_bias=True)")
    if conv:
        if getattr(layer, "data_format", "channels_last") not in (None, "channels_last"):
            raise ValueError(f"{where}: data_format={layer.data_format!r} is not supported (channels_last only)")
        if set(tuple(getattr(layer, "dilation_rate", (1,)))) != {1}:
            raise ValueError(f"{where}: dilation_rate={tuple(layer.dilation_rate)} is not supported (only 1)")
        if getattr(layer, "groups", 1) != 1:
            raise ValueError(f"{where}: groups={layer.groups} is not supported (only 1)")
        if len(ctx.shape) != 3:
            raise ValueError(f"{where}: needs an (H, W, C) input; the tensor here has shape {ctx.shape}")
    elif len(ctx.shape) != 1:
        raise ValueError(f"{where}: needs a flat input; the tensor here has shape {ctx.shape} (add a Flatten)")
    name = activation_name(layer)
    if layer is ctx.last_weighted and name != "linear":
        raise ValueError(f"{where}: the last weighted layer must have no activation before Softmax; got {name!r}")
    return name


def _bayesian(layer, ctx, filter_shape_of, channel_axis=0):
    """BayesianWeights of a JQ `VariationalLayer` (today's checks), its filter in IR layout."""
    from tfqbnn.quantizers import UniformQuantizer

    where = ctx.where(layer)
    if not layer.sample_at_inference:  # the integer model always samples: it would not match this Keras model
        raise ValueError(f"{where}: sample_at_inference=False is not supported; the exported model samples its "
                         "weights at inference (set sample_at_inference=True, or export a deterministic model "
                         "another way)")
    q = layer.quantization
    if q.strategy != "jq":
        raise ValueError(f"{where}: quantization {q.name!r} is not supported; only JQ models can be exported")
    if q.mu_bits != q.sample_bits:
        raise ValueError(f"{where}: mu_bits={q.mu_bits} != sample_bits={q.sample_bits}; the mu grid must be the SPQ grid")
    if q.clip != 1.0:
        raise ValueError(f"{where}: clip={q.clip} is not supported (the SPQ grid must be [-1, 1])")
    if q.sigma_quantizer_kind != "log":
        raise ValueError(f"{where}: sigma_quantizer={q.sigma_quantizer_kind!r} is not supported (only 'log')")
    layout = storage.choose_layout(ctx.weights, q.mu_bits, q.sigma_bits, where)
    mu = filter_shape_of(np.asarray(layer.mu.numpy(), np.float64))
    sigma = filter_shape_of(np.asarray(layer.sigma.numpy(), np.float64))
    w = BayesianWeights(mu_codes=UniformQuantizer(q.mu_bits, 1.0).codes(mu).astype(np.int16),
                        sigma_codes=q.sigma_quantizer.codes(sigma).astype(np.int16), weight_bits=q.mu_bits,
                        sigma_bits=q.sigma_bits, layout=layout, sigma_q=sampler.sigma_q_table(q.sigma_quantizer, q.mu_bits),
                        index=ctx.index, sigma_range=tuple(q.sigma_range), channel_axis=channel_axis)
    ctx.index += 1
    return w


def _constant(layer, ctx, filter_shape_of, channel_axis):
    """ConstantWeights of a Quantized* QAT layer: the codes and scales of its own quantizer (TF, float32), so the
    grid is exactly the one Keras trained and evaluates on."""
    import tensorflow as tf

    where = ctx.where(layer)
    if layer.kernel_bits > 8:
        raise ValueError(f"{where}: kernel_bits={layer.kernel_bits} cannot be stored (int8 at most)")
    kernel = tf.convert_to_tensor(layer.kernel)
    scale = layer.kernel_scale(kernel)  # max|w| per tensor / per output channel, broadcastable
    codes = layer.kernel_quantizer.codes(kernel / scale).numpy()
    scales = (np.asarray(scale.numpy(), np.float64) / layer.kernel_quantizer.max_code).astype(np.float32)
    scales = filter_shape_of(np.broadcast_to(scales, codes.shape)) if layer.per_channel else scales.reshape(1)
    codes = filter_shape_of(codes)
    if layer.per_channel:  # one scale per output channel of the IR filter
        scales = np.moveaxis(scales, channel_axis, 0).reshape(scales.shape[channel_axis], -1)[:, 0]
    return ConstantWeights(codes.astype(np.int8), scales, 4 if layer.kernel_bits <= 4 else 8, channel_axis)


def _hwio_to_ohwi(k):
    return np.transpose(k, (3, 0, 1, 2))


def _hwcm_to_1hwo(k):  # depthwise (kh, kw, C, M) -> (1, kh, kw, C * M): output channel c * M + m
    return k.reshape(1, k.shape[0], k.shape[1], -1)


def dense_variational(layer, ctx):
    activation = _check_common(layer, ctx)
    w = _bayesian(layer, ctx, lambda k: k.T)  # [in, out] -> [O, I]
    ctx.shape = (int(layer.units),)
    return [IntegerLayer(name=layer.name, index=w.index, mu_codes=w.mu_codes, sigma_codes=w.sigma_codes,
                         weight_bits=w.weight_bits, sigma_bits=w.sigma_bits, layout=w.layout, sigma_q=w.sigma_q,
                         sigma_range=w.sigma_range, activation=activation, input_scale=INPUT_SCALE,
                         input_zero_point=INPUT_ZERO_POINT)]


def _conv(layer, ctx, weights_of, cls, to_filter, channel_axis):
    activation = _check_common(layer, ctx, conv=True)
    if cls is DepthwiseConv2D and tuple(layer.strides)[0] != tuple(layer.strides)[1]:
        raise ValueError(f"{ctx.where(layer)}: strides={tuple(layer.strides)} must be equal for a depthwise conv")
    op = cls(name=layer.name, weights=weights_of(layer, ctx, to_filter, channel_axis), activation=activation,
             strides=tuple(int(s) for s in layer.strides), padding=str(layer.padding).lower())
    ctx.shape = op.output_shape(ctx.shape)
    return [op]


def conv2d_variational(layer, ctx):
    return _conv(layer, ctx, _bayesian, Conv2D, _hwio_to_ohwi, 0)


def conv1d_variational(layer, ctx):
    """A (steps, channels) signal as a [1, steps, channels] image: RESHAPE, CONV_2D with a 1 x K filter, RESHAPE."""
    if len(ctx.shape) != 2:
        raise ValueError(f"{ctx.where(layer)}: needs a (steps, channels) input; the tensor here has shape {ctx.shape}")
    steps, channels = ctx.shape
    ctx.shape = (1, steps, channels)
    activation = _check_common(layer, ctx, conv=True)
    w = _bayesian(layer, ctx, lambda k: np.transpose(k, (2, 0, 1))[:, None], 0)  # (K, I, O) -> OHWI (O, 1, K, I)
    op = Conv2D(name=layer.name, weights=w, activation=activation, strides=(1, int(layer.strides[0])),
                padding=str(layer.padding).lower())
    ctx.shape = op.output_shape(ctx.shape)[1:]
    return [Reshape(f"{layer.name}_image", (1, steps, channels)), op, Reshape(f"{layer.name}_steps", ctx.shape)]


def depthwise_conv2d_variational(layer, ctx):
    return _conv(layer, ctx, _bayesian, DepthwiseConv2D, _hwcm_to_1hwo, 3)


def quantized_conv2d(layer, ctx):
    return _conv(layer, ctx, _constant, Conv2D, _hwio_to_ohwi, 0)


def quantized_depthwise_conv2d(layer, ctx):
    return _conv(layer, ctx, _constant, DepthwiseConv2D, _hwcm_to_1hwo, 3)


def quantized_dense(layer, ctx):
    activation = _check_common(layer, ctx)
    w = _constant(layer, ctx, lambda k: k.T, 0)
    ctx.shape = (int(layer.units),)
    return [FullyConnected(name=layer.name, weights=w, activation=activation)]


def _pool(cls):
    def convert(layer, ctx):
        where = ctx.where(layer)
        if getattr(layer, "data_format", "channels_last") not in (None, "channels_last"):
            raise ValueError(f"{where}: data_format={layer.data_format!r} is not supported (channels_last only)")
        if len(ctx.shape) != 3:
            raise ValueError(f"{where}: needs an (H, W, C) input; the tensor here has shape {ctx.shape}")
        op = cls(name=layer.name, pool_size=tuple(int(v) for v in layer.pool_size),
                 strides=tuple(int(v) for v in layer.strides), padding=str(layer.padding).lower())
        ctx.shape = op.output_shape(ctx.shape)
        if 0 in ctx.shape:
            raise ValueError(f"{where}: output shape {ctx.shape} is empty")
        return [op]
    return convert


def global_average_pooling2d(layer, ctx):
    where = ctx.where(layer)
    if getattr(layer, "data_format", "channels_last") not in (None, "channels_last") or layer.keepdims:
        raise ValueError(f"{where}: data_format={layer.data_format!r}, keepdims={layer.keepdims} is not supported "
                         "(channels_last, keepdims=False only)")
    if len(ctx.shape) != 3:
        raise ValueError(f"{where}: needs an (H, W, C) input; the tensor here has shape {ctx.shape}")
    op = GlobalAveragePool2D(name=layer.name)
    ctx.shape = op.output_shape(ctx.shape)
    return [op]


def reshape(layer, ctx):
    op = Reshape(name=layer.name, shape=tuple(int(v) for v in layer.target_shape))
    try:
        ctx.shape = op.output_shape(ctx.shape)
    except ValueError:
        raise ValueError(f"{ctx.where(layer)}: cannot reshape {ctx.shape} to {op.shape}") from None
    return [op]


def flatten(layer, ctx):
    if getattr(layer, "data_format", "channels_last") not in (None, "channels_last"):
        raise ValueError(f"{ctx.where(layer)}: data_format={layer.data_format!r} is not supported")
    op = Reshape(name=layer.name, shape=(-1,))
    ctx.shape = op.output_shape(ctx.shape)
    return [op]


def softmax(layer, ctx):
    """Only as the model's last layer (checked in `integer_ops`), over the class axis."""
    axis = layer.axis
    if isinstance(axis, (list, tuple)) and len(axis) == 1:
        axis = axis[0]
    if len(ctx.shape) != 1 or axis not in (-1, 1):  # the integer softmax runs over one image's classes
        raise ValueError(f"layer {layer.name!r}: Softmax(axis={axis!r}) is not supported; the integer model "
                         f"normalizes over the class axis only (axis=-1 of a flat tensor; here {ctx.shape})")
    return [Softmax(name=layer.name)]


@dataclass(frozen=True)
class Registration:
    """How one Keras layer class becomes IR ops.

    * `convert(layer, ctx)` -- the converter: a list of IR ops (refusals: one-line ValueErrors naming the layer)
    * `example()` -- (Keras layers, per-example input shape): a small instance of the layer for the registry-driven
      tests (the layers are fresh on every call)
    * `weighted` -- the layer holds weights (a model needs one before its Softmax; the last one has no activation)
    * `replaces` -- the stock Keras class name this layer is used instead of (a refused stock layer names it)
    """

    convert: Callable
    example: Callable
    weighted: bool = False
    replaces: str | None = None


_JQ = dict(quantization="jq4", seed=3, init_sigma=0.08)  # the Bayesian examples: sigma wide enough that samples move


def converters():
    """{Keras layer class: Registration}: the one table a new layer kind is added to. Exact classes: a subclass
    (e.g. a plain keras Conv2D under QuantizedConv2D) is not silently treated as its parent."""
    import keras

    from tfqbnn import layers as tl

    L = keras.layers
    return {
        tl.DenseVariational: Registration(
            dense_variational, lambda: ([tl.DenseVariational(6, **_JQ)], (20,)), True, "Dense"),
        tl.Conv2DVariational: Registration(
            conv2d_variational, lambda: ([tl.Conv2DVariational(3, 3, padding="same", activation="relu", **_JQ)],
                                         (8, 8, 2)), True, "Conv2D"),
        tl.Conv1DVariational: Registration(
            conv1d_variational, lambda: ([tl.Conv1DVariational(4, 3, strides=2, padding="same", activation="relu",
                                                               **_JQ)], (13, 2)), True, "Conv1D"),
        tl.DepthwiseConv2DVariational: Registration(
            depthwise_conv2d_variational,
            lambda: ([tl.DepthwiseConv2DVariational(2, strides=2, activation="softplus", **_JQ)], (6, 6, 3)), True,
            "DepthwiseConv2D"),
        tl.QuantizedDense: Registration(
            quantized_dense, lambda: ([tl.QuantizedDense(12, use_bias=False, kernel_bits=8, activation="relu")], (20,)),
            True, "Dense"),
        tl.QuantizedConv2D: Registration(
            quantized_conv2d, lambda: ([tl.QuantizedConv2D(4, 2, use_bias=False, kernel_bits=4, per_channel=False,
                                                           activation="softplus")], (6, 6, 3)), True, "Conv2D"),
        tl.QuantizedDepthwiseConv2D: Registration(
            quantized_depthwise_conv2d,
            lambda: ([tl.QuantizedDepthwiseConv2D(3, depth_multiplier=2, use_bias=False, kernel_bits=4,
                                                  activation="softplus")], (8, 8, 3)), True, "DepthwiseConv2D"),
        L.MaxPooling2D: Registration(_pool(MaxPool2D), lambda: ([L.MaxPooling2D(2, padding="same")], (7, 7, 3))),
        L.AveragePooling2D: Registration(_pool(AveragePool2D),
                                         lambda: ([L.AveragePooling2D(2, strides=1, padding="same")], (6, 6, 3))),
        L.GlobalAveragePooling2D: Registration(global_average_pooling2d,
                                               lambda: ([L.GlobalAveragePooling2D()], (6, 5, 4))),
        L.Reshape: Registration(reshape, lambda: ([L.Reshape((4, 4, 2))], (32,))),
        L.Flatten: Registration(flatten, lambda: ([L.Flatten()], (3, 3, 2))),
        L.Softmax: Registration(softmax, lambda: ([], (10,))),  # the model's own last layer
    }


def _hint(table, name):
    """'(use A or B)' for a refused stock Keras class that registered layers replace, else the supported list."""
    use = [cls.__name__ for cls, reg in table.items() if reg.replaces == name]
    return f" (use {' or '.join(sorted(use, reverse=True))})" if use else \
        f"; supported: {sorted(c.__name__ for c in table)}"


def integer_ops(model, weights="int4"):
    """(ops, per-example input shape) of a Keras model; ValueError (one line, naming the layer) otherwise."""
    import keras

    storage.choose_layout(weights, 2, 2)  # validates the mode string
    if not isinstance(model, keras.Sequential):
        raise ValueError(f"only keras.Sequential models can be exported; received {type(model).__name__}")
    layers = list(model.layers)
    if not layers or not isinstance(layers[-1], keras.layers.Softmax):
        last = layers[-1].name if layers else None
        raise ValueError(f"the model must end with keras.layers.Softmax; last layer is {last!r}")
    table = converters()
    for layer in layers:
        if isinstance(layer, keras.Model):
            raise ValueError(f"layer {layer.name!r}: nested models are not supported; export a flat Sequential")
        if type(layer) not in table:
            raise ValueError(f"layer {layer.name!r}: {type(layer).__name__} is not supported"
                             + _hint(table, type(layer).__name__))
    for layer in layers[:-1]:
        if isinstance(layer, keras.layers.Softmax):
            raise ValueError(f"layer {layer.name!r}: Softmax is supported only as the model's last layer")
    weighted = [layer for layer in layers if table[type(layer)].weighted]
    if not weighted:
        raise ValueError("the model has no weighted layer (DenseVariational, ...) before its Softmax")
    shape = tuple(model.inputs[0].shape[1:]) if getattr(model, "inputs", None) else None
    if shape is None or None in shape:
        raise ValueError(f"the model needs a fully known input shape (keras.Input); received {shape}")
    ctx = _Context(weights, shape, weighted[-1])
    ops = []
    for layer in layers:
        ops += table[type(layer)].convert(layer, ctx)
    return ops, tuple(int(v) for v in shape)
