"""Quantization-aware deterministic layers: Keras ``Dense`` / ``Conv2D`` / ``DepthwiseConv2D``
whose kernel passes through the same `UniformQuantizer` STE as the Bayesian layers.

They are subclasses, not a wrapper: the kernel stays ``layer.kernel`` (the float
"shadow" weight QAT trains), so `isinstance(layer, keras.layers.Conv2D)`,
``init_from_deterministic``, model summaries and the exporter see an ordinary Keras
layer; only the forward pass uses ``fake_quantize(kernel)``.

The scale is symmetric and taken from the kernel itself: ``s = max|w|`` per tensor
or per output channel (the way TFLite quantizes weights), and
``w_q = s * Q(w / s)`` with ``Q = UniformQuantizer(bits, clip=1)``, so nothing is
clipped and the STE is the identity (``s`` is treated as a constant).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from tfqbnn.layers.conv import check_data_format
from tfqbnn.quantizers import UniformQuantizer, check_bits


class _QuantizedKernelMixin:
    """``kernel_bits`` / ``per_channel`` arguments, `fake_quantize` and config entries."""

    # axes of the kernel that make one output channel
    _channel_axes: tuple = ()

    def _init_quantizer(self, kernel_bits, per_channel):
        self.kernel_bits = check_bits(kernel_bits, "kernel_bits")
        if not isinstance(per_channel, bool):
            raise ValueError(f"`per_channel` must be a bool; received per_channel={per_channel!r}")
        self.per_channel = per_channel
        self.kernel_quantizer = UniformQuantizer(self.kernel_bits, 1.0)

    def kernel_scale(self, kernel):
        """``max|w|`` per tensor, or per output channel (broadcastable to the kernel)."""
        kernel = tf.convert_to_tensor(kernel)
        rank = len(kernel.shape)
        keep = tuple(a % rank for a in self._channel_axes) if self.per_channel else ()
        axes = [a for a in range(rank) if a not in keep]
        scale = tf.reduce_max(tf.abs(kernel), axis=axes, keepdims=True)
        return tf.stop_gradient(tf.maximum(scale, 1e-12))

    def fake_quantize(self, kernel):
        """The kernel on its ``2**bits - 1``-level grid, with the quantizer's STE gradient."""
        kernel = tf.convert_to_tensor(kernel)
        s = self.kernel_scale(kernel)
        return s * self.kernel_quantizer(kernel / s)

    def quantized_kernel(self):
        return self.fake_quantize(self.kernel)

    def _quant_config(self, config):
        config.update({"kernel_bits": self.kernel_bits, "per_channel": self.per_channel})
        return config


@keras.saving.register_keras_serializable(package="tfqbnn")
class QuantizedDense(_QuantizedKernelMixin, keras.layers.Dense):
    """Keras ``Dense`` trained with a ``kernel_bits``-bit fake-quantized kernel (QAT).

    Args:
        units: as Keras ``Dense``.
        kernel_bits: int, bits of the stored kernel (4 or 8 for the exporter).
        per_channel: one scale per output unit (True) or one per tensor.
        **kwargs: the other arguments of Keras ``Dense`` (``activation``, ``use_bias``, ...).
    """

    _channel_axes = (-1,)

    def __init__(self, units, kernel_bits=8, per_channel=True, **kwargs):
        super().__init__(units, **kwargs)
        self._init_quantizer(kernel_bits, per_channel)

    def call(self, inputs, training=None):
        x = ops.matmul(inputs, self.quantized_kernel())
        if self.bias is not None:
            x = ops.add(x, self.bias)
        return self.activation(x) if self.activation is not None else x

    def get_config(self):
        return self._quant_config(super().get_config())


@keras.saving.register_keras_serializable(package="tfqbnn")
class QuantizedConv2D(_QuantizedKernelMixin, keras.layers.Conv2D):
    """Keras ``Conv2D`` trained with a ``kernel_bits``-bit fake-quantized kernel (QAT).

    ``per_channel``: one scale per filter (True) or one per tensor.
    """

    _channel_axes = (-1,)

    def __init__(self, filters, kernel_size, kernel_bits=8, per_channel=True, **kwargs):
        check_data_format(kwargs.get("data_format"))  # the integer export and the C runtime are NHWC only
        super().__init__(filters, kernel_size, **kwargs)
        self._init_quantizer(kernel_bits, per_channel)

    def convolution_op(self, inputs, kernel):
        return super().convolution_op(inputs, self.fake_quantize(kernel))

    def get_config(self):
        return self._quant_config(super().get_config())


@keras.saving.register_keras_serializable(package="tfqbnn")
class QuantizedDepthwiseConv2D(_QuantizedKernelMixin, keras.layers.DepthwiseConv2D):
    """Keras ``DepthwiseConv2D`` trained with a ``kernel_bits``-bit fake-quantized kernel (QAT).

    ``per_channel``: one scale per output channel (input channel x multiplier) or one per tensor.
    """

    _channel_axes = (-2, -1)

    def __init__(self, kernel_size, kernel_bits=8, per_channel=True, **kwargs):
        check_data_format(kwargs.get("data_format"))
        super().__init__(kernel_size, **kwargs)
        self._init_quantizer(kernel_bits, per_channel)

    def call(self, inputs):
        outputs = ops.depthwise_conv(inputs, self.quantized_kernel(), strides=self.strides, padding=self.padding,
                                     dilation_rate=self.dilation_rate, data_format=self.data_format)
        if self.use_bias:
            channels = self.kernel.shape[-2] * self.depth_multiplier
            shape = (1, 1, 1, channels) if self.data_format == "channels_last" else (1, channels, 1, 1)
            outputs = ops.add(outputs, ops.reshape(self.bias, shape))
        return self.activation(outputs) if self.activation is not None else outputs

    def get_config(self):
        return self._quant_config(super().get_config())
