"""`Conv1DVariational`, `Conv2DVariational`, `Conv3DVariational` and `DepthwiseConv2DVariational`: mean-field
Gaussian convolutions (one rank-generic base, as Keras' ``BaseConv``).

Same posterior, quantization (VPQ / SPQ / JQ), STE gradients, KL and Monte-Carlo
grouping as `DenseVariational` (all in `VariationalLayer`); only the kernel shape
and the linear map differ.  Argument handling follows Keras' ``Conv2D`` /
``DepthwiseConv2D``, restricted to what the Cortex-M path can run: channels-last,
``"valid"`` / ``"same"`` padding, no dilation, no groups.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tfqbnn.layers.base import VariationalLayer

PADDINGS = ("valid", "same")


def _tuple(value, name, rank):
    """An int or `rank` positive ints as a `rank`-tuple (Keras' ``standardize_tuple``)."""
    items = (value,) * rank if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value
    try:
        items = tuple(items)
    except TypeError:
        items = ()
    if len(items) != rank or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0 for v in items):
        raise ValueError(f"`{name}` must be a positive integer or a tuple of {rank} positive integers; "
                         f"received {name}={value!r}")
    return tuple(int(v) for v in items)


def check_data_format(data_format):
    if data_format not in (None, "channels_last"):
        raise ValueError(f"only data_format='channels_last' is supported; received data_format={data_format!r}")


def _check_conv_args(padding, data_format, dilation_rate, groups, rank):
    pad = padding.lower() if isinstance(padding, str) else padding
    if pad not in PADDINGS:
        raise ValueError(f"`padding` must be one of {list(PADDINGS)}; received padding={padding!r}")
    check_data_format(data_format)
    if _tuple(dilation_rate, "dilation_rate", rank) != (1,) * rank:
        raise ValueError(f"dilated convolutions are not supported; received dilation_rate={dilation_rate!r}")
    if groups != 1:
        raise ValueError(f"grouped convolutions are not supported (groups must be 1); received groups={groups!r}")
    return pad


def _dims(y):
    """Static dims where known, dynamic ones elsewhere (keeps static shapes through reshapes)."""
    dynamic = tf.shape(y)
    return [d if d is not None else dynamic[i] for i, d in enumerate(y.shape)]


def _output_size(n, k, s, padding):
    if n is None:
        return None
    return -(-n // s) if padding == "same" else (n - k) // s + 1


class _ConvBase(VariationalLayer):
    """Arguments and shape logic of the variational convolutions of any spatial rank (Keras' ``BaseConv``):
    inputs ``(batch, *spatial, channels)`` with ``rank`` spatial axes."""

    def __init__(self, rank, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1, groups=1,
                 activation=None, use_bias=False, **kwargs):
        self.rank = int(rank)
        self.kernel_size = _tuple(kernel_size, "kernel_size", self.rank)
        self.strides = _tuple(strides, "strides", self.rank)
        self.padding = _check_conv_args(padding, data_format, dilation_rate, groups, self.rank)
        super().__init__(activation=activation, use_bias=use_bias, **kwargs)
        self.input_spec = keras.layers.InputSpec(ndim=self.rank + 2)

    def _input_channels(self, input_shape):
        if len(input_shape) != self.rank + 2:
            raise ValueError(f"{type(self).__name__} needs {self.rank + 2}D inputs (batch, {self.rank} spatial axes, "
                             f"channels); received input_shape={tuple(input_shape)}")
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(f"{type(self).__name__} needs a known channel dimension; received input_shape={input_shape}")
        self.input_spec = keras.layers.InputSpec(ndim=self.rank + 2, axes={-1: channels})
        return int(channels)

    def _spatial_out(self, input_shape):
        out = tuple(_output_size(n, k, s, self.padding)
                    for n, k, s in zip(input_shape[1:1 + self.rank], self.kernel_size, self.strides))
        if any(v is not None and v <= 0 for v in out):
            raise ValueError(f"{type(self).__name__}: kernel_size={self.kernel_size} is larger than the input "
                             f"{tuple(input_shape[1:1 + self.rank])} with padding='valid'")
        return out

    def kernel_shape(self, input_shape):
        channels = self._input_channels(input_shape)
        self._spatial_out(input_shape)
        return self.kernel_size + (channels, self._kernel_out())

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self._spatial_out(input_shape), self.output_channels(input_shape))

    def get_config(self):
        config = super().get_config()
        config.update({"kernel_size": self.kernel_size, "strides": self.strides, "padding": self.padding})
        return config


class _ConvVariational(_ConvBase):
    """Mean-field Gaussian convolution of spatial rank ``rank`` (kernel ``(*kernel_size, in, filters)``); the
    public classes fix the rank. One weight sample per call (per block under `sample_groups`), quantized as
    configured, as in `DenseVariational`."""

    def __init__(self, rank, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 groups=1, activation=None, use_bias=False, **kwargs):
        if isinstance(filters, bool) or not isinstance(filters, (int, np.integer)) or filters <= 0:
            raise ValueError(f"`filters` must be a positive integer; received filters={filters!r}")
        super().__init__(rank, kernel_size, strides, padding, data_format, dilation_rate, groups, activation,
                         use_bias, **kwargs)
        self.filters = int(filters)

    def _kernel_out(self):
        return self.filters

    def output_channels(self, input_shape):
        return self.filters

    def apply_kernel(self, inputs, kernel):
        return tf.nn.convolution(inputs, kernel, self.strides, self.padding.upper())

    def apply_kernel_shared(self, inputs, kernels):
        # one convolution with the G kernels side by side as G * filters output channels
        g, f = kernels.shape[0], kernels.shape[-1]
        spatial = tuple(range(1, self.rank + 2))  # kernel axes, then the input channel
        wide = tf.reshape(tf.transpose(kernels, (*spatial, 0, self.rank + 2)), (*kernels.shape[1:-1], g * f))
        y = self.apply_kernel(inputs, wide)  # [B, *spatial, G * F]
        dims = _dims(y)[1:-1]
        y = tf.reshape(y, [-1, *dims, g, f])
        y = tf.transpose(y, (self.rank + 1, 0, *range(1, self.rank + 1), self.rank + 2))
        return tf.reshape(y, [-1, *dims, f])

    def get_config(self):
        config = super().get_config()
        config["filters"] = self.filters
        return config


@keras.saving.register_keras_serializable(package="tfqbnn")
class Conv1DVariational(_ConvVariational):
    """Mean-field Gaussian 1D convolution (kernel ``(k, in, filters)``).

    The arguments are those of `Conv2DVariational` with one spatial axis (``kernel_size`` and ``strides``: an int
    or a 1-tuple). Exported as a CONV_2D over a ``(1, steps)`` image.

    Input shape:
        3D tensor ``(batch, steps, channels)``.
    Output shape:
        3D tensor ``(batch, new_steps, filters)``.
    """

    keras_class = keras.layers.Conv1D  # its deterministic twin (models.init_from_deterministic)

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 groups=1, activation=None, use_bias=False, **kwargs):
        super().__init__(1, filters, kernel_size, strides, padding, data_format, dilation_rate, groups, activation,
                         use_bias, **kwargs)


@keras.saving.register_keras_serializable(package="tfqbnn")
class Conv2DVariational(_ConvVariational):
    """Mean-field Gaussian 2D convolution (`VariationalLayer` with a ``(kh, kw, in, filters)`` kernel).

    One weight sample per call (per block under `sample_groups`), quantized as
    configured, as in `DenseVariational`.

    Args:
        filters: positive int, number of output channels.
        kernel_size: int or pair of ints.
        strides: int or pair of ints.
        padding: ``"valid"`` or ``"same"`` (case-insensitive).
        data_format: accepted for Keras compatibility; only ``"channels_last"``
            (anything else is a ValueError, as for the next two).
        dilation_rate: only 1.
        groups: only 1.
        activation: as in Keras' ``Conv2D``.
        use_bias: as in Keras' ``Conv2D`` (default bias-free).
        **kwargs: `VariationalLayer` and base Layer arguments.

    Input shape:
        4D tensor ``(batch, height, width, channels)``.
    Output shape:
        4D tensor ``(batch, new_height, new_width, filters)``.
    """

    keras_class = keras.layers.Conv2D  # its deterministic twin (models.init_from_deterministic)

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 groups=1, activation=None, use_bias=False, **kwargs):
        super().__init__(2, filters, kernel_size, strides, padding, data_format, dilation_rate, groups, activation,
                         use_bias, **kwargs)


@keras.saving.register_keras_serializable(package="tfqbnn")
class Conv3DVariational(_ConvVariational):
    """Mean-field Gaussian 3D convolution (kernel ``(kd, kh, kw, in, filters)``); Keras only: not exported.

    The arguments are those of `Conv2DVariational` with three spatial axes.

    Input shape:
        5D tensor ``(batch, depth, height, width, channels)``.
    Output shape:
        5D tensor ``(batch, new_depth, new_height, new_width, filters)``.
    """

    keras_class = keras.layers.Conv3D  # its deterministic twin (models.init_from_deterministic)

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 groups=1, activation=None, use_bias=False, **kwargs):
        super().__init__(3, filters, kernel_size, strides, padding, data_format, dilation_rate, groups, activation,
                         use_bias, **kwargs)


@keras.saving.register_keras_serializable(package="tfqbnn")
class DepthwiseConv2DVariational(_ConvBase):
    """Mean-field Gaussian depthwise 2D convolution (kernel ``(kh, kw, channels, depth_multiplier)``).

    Args:
        kernel_size: int or pair of ints.
        strides: int or pair of equal ints (TF's depthwise convolution needs equal strides).
        padding: ``"valid"`` or ``"same"``.
        depth_multiplier: positive int, output channels per input channel.
        data_format: only ``"channels_last"`` (see `Conv2DVariational`).
        dilation_rate: only 1.
        activation: as in `Conv2DVariational`.
        use_bias: as in `Conv2DVariational`.
        **kwargs: as in `Conv2DVariational` (``groups``, if given, must be 1).

    Output shape:
        4D tensor ``(batch, new_height, new_width, channels * depth_multiplier)``.
    """

    keras_class = keras.layers.DepthwiseConv2D  # its deterministic twin (models.init_from_deterministic)

    def __init__(self, kernel_size, strides=1, padding="valid", depth_multiplier=1, data_format=None,
                 dilation_rate=1, activation=None, use_bias=False, **kwargs):
        if (isinstance(depth_multiplier, bool) or not isinstance(depth_multiplier, (int, np.integer))
                or depth_multiplier <= 0):
            raise ValueError(f"`depth_multiplier` must be a positive integer; received depth_multiplier={depth_multiplier!r}")
        groups = kwargs.pop("groups", 1)
        super().__init__(2, kernel_size, strides, padding, data_format, dilation_rate, groups, activation, use_bias,
                         **kwargs)
        if self.strides[0] != self.strides[1]:
            raise ValueError(f"DepthwiseConv2DVariational needs equal strides; received strides={strides!r}")
        self.depth_multiplier = int(depth_multiplier)

    def _kernel_out(self):
        return self.depth_multiplier

    def output_channels(self, input_shape):
        return int(input_shape[-1]) * self.depth_multiplier

    def apply_kernel(self, inputs, kernel):
        return tf.nn.depthwise_conv2d(inputs, kernel, (1,) + self.strides + (1,), self.padding.upper())

    def apply_kernel_shared(self, inputs, kernels):
        # one depthwise convolution with depth multiplier G * M; output channel c * G * M + g * M + m
        g, kh, kw, c, m = kernels.shape
        wide = tf.reshape(tf.transpose(kernels, (1, 2, 3, 0, 4)), (kh, kw, c, g * m))
        y = self.apply_kernel(inputs, wide)
        _, h, w, _ = _dims(y)
        y = tf.transpose(tf.reshape(y, [-1, h, w, c, g, m]), (4, 0, 1, 2, 3, 5))
        return tf.reshape(y, [-1, h, w, c * m])

    def get_config(self):
        config = super().get_config()
        config["depth_multiplier"] = self.depth_multiplier
        return config
