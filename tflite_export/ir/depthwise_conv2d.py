"""DEPTHWISE_CONV_2D (TFLite reference_integer_ops::DepthwiseConvPerChannel), NHWC input, filter 1HWO with
O = C * depth_multiplier: output channel `o = c * dm + m` reads input channel `c = o // dm`;
`acc[n, y, x, o] = sum_{fy, fx} w[0, fy, fx, o] * (q[n, y*sh - ph + fy*dh, x*sw - pw + fx*dw, o // dm] - zp_in)`
over the in-image taps, + bias, per-channel requantization along O, fused activation. Bayesian filters are
sampled in 1HWO row-major order (the stored order)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tflite_export.intmath import window
from tflite_export.ir import activation as act
from tflite_export.ir.base import Example
from tflite_export.ir.weighted import WeightedOp


@dataclass(eq=False)
class DepthwiseConv2D(WeightedOp):
    strides: tuple = (1, 1)
    padding: str = "valid"
    dilation: tuple = (1, 1)

    kind = "DEPTHWISE_CONV_2D"
    tflite_builtins = ("DEPTHWISE_CONV_2D", *act.SOFTPLUS_BUILTINS)
    channel_axis = 3

    def __post_init__(self):
        super().__post_init__()
        self.padding = window.check_padding(self.padding, f"op {self.name!r}")
        if len(self.weights.shape) != 4 or self.weights.shape[0] != 1:
            raise ValueError(f"op {self.name!r}: DEPTHWISE_CONV_2D filters are 1HWO; received {self.weights.shape}")

    def depth_multiplier(self, in_channels):
        o = self.weights.shape[3]
        if o % in_channels:
            raise ValueError(f"op {self.name!r}: {o} output channels are not a multiple of {in_channels} input channels")
        return o // in_channels

    def output_shape(self, in_shape):
        h, w, c = in_shape
        _, fh, fw, o = self.weights.shape
        self.depth_multiplier(c)
        return (window.out_size(self.padding, h, fh, self.strides[0], self.dilation[0]),
                window.out_size(self.padding, w, fw, self.strides[1], self.dilation[1]), o)

    def accumulate(self, q, w):
        q = np.asarray(q)
        self.output_shape(q.shape[1:])
        dm = self.depth_multiplier(q.shape[3])
        x = q.astype(np.float64) - self.input_zero_point
        patches, _ = window.windows(x, self.weights.shape[1:3], self.strides, self.padding, self.dilation, fill=0.0)
        patches = np.repeat(patches, dm, axis=-1)  # channel o reads input channel o // dm
        return np.einsum("nyxhwo,hwo->nyxo", patches, np.asarray(w, np.float64)[0]).astype(np.int64)

    filter_format = "1HWO"
    def emit_c(self, em, i, in_shape):
        return self.c_conv(em, i, 1, int(np.prod(self.weights.shape)), in_shape)

    tflite_needs_bias = True  # pip TFLM segfaults in Prepare on a DEPTHWISE_CONV_2D without bias: zeros are written

    def tflite_options(self, schema, in_shape):
        o = schema.DepthwiseConv2DOptionsT()
        o.padding = schema.Padding.SAME if self.padding == "same" else schema.Padding.VALID
        o.strideH, o.strideW = (int(v) for v in self.strides)
        o.dilationHFactor, o.dilationWFactor = (int(v) for v in self.dilation)
        o.depthMultiplier = self.depth_multiplier(int(in_shape[-1]))
        o.fusedActivationFunction = act.fused_tflite(self.activation, schema)
        return schema.BuiltinOperator.DEPTHWISE_CONV_2D, schema.BuiltinOptions.DepthwiseConv2DOptions, o

    def manifest_entry(self):
        return {**super().manifest_entry(), "strides": list(self.strides), "padding": self.padding,
                "dilation": list(self.dilation)}

    @classmethod
    def example(cls):
        from tflite_export.ir.weights import BayesianWeights, ConstantWeights

        bias = np.random.default_rng(2).integers(-300, 300, size=8)
        return [Example(cls("dw", ConstantWeights.example((1, 3, 3, 8), 4, True, 3), "relu", bias, strides=(2, 2),
                            padding="same"), (8, 9, 4)),
                Example(cls("dw8", ConstantWeights.example((1, 2, 3, 3), 8, False, 3), "softplus"), (5, 6, 3)),
                Example(cls("bdw", BayesianWeights.example((1, 3, 3, 6), channel_axis=3), padding="valid"),
                        (7, 8, 3), (0.02, 3))]
