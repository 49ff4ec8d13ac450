"""CONV_2D (TFLite reference_integer_ops::ConvPerChannel), NHWC input, filter OHWI:
`acc[n, y, x, o] = sum_{fy, fx, i} w[o, fy, fx, i] * (q[n, y*sh - ph + fy*dh, x*sw - pw + fx*dw, i] - zp_in)`
over the in-image taps only (padding contributes nothing), + bias, per-channel requantization, fused
activation. Weights: `BayesianWeights` OHWI (sampled by QBNN_SAMPLE, stream bytes in OHWI row-major order, so
one output channel's filter is one contiguous run of the stream) or `ConstantWeights` OHWI (int8 / int4,
per-tensor or per-channel along O)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tflite_export.intmath import window
from tflite_export.ir import activation as act
from tflite_export.ir.base import Example
from tflite_export.ir.weighted import WeightedOp


@dataclass(eq=False)
class Conv2D(WeightedOp):
    strides: tuple = (1, 1)
    padding: str = "valid"
    dilation: tuple = (1, 1)

    kind = "CONV_2D"
    tflite_builtins = ("CONV_2D", *act.SOFTPLUS_BUILTINS)
    channel_axis = 0

    def __post_init__(self):
        super().__post_init__()
        self.padding = window.check_padding(self.padding, f"op {self.name!r}")
        if len(self.weights.shape) != 4:
            raise ValueError(f"op {self.name!r}: CONV_2D filters are OHWI (rank 4); received {self.weights.shape}")

    def output_shape(self, in_shape):
        h, w, c = in_shape
        o, fh, fw, i = self.weights.shape
        if c != i:
            raise ValueError(f"op {self.name!r}: input has {c} channels, the OHWI filter {self.weights.shape} wants {i}")
        return (window.out_size(self.padding, h, fh, self.strides[0], self.dilation[0]),
                window.out_size(self.padding, w, fw, self.strides[1], self.dilation[1]), o)

    def accumulate(self, q, w):
        q = np.asarray(q)
        self.output_shape(q.shape[1:])
        x = q.astype(np.float64) - self.input_zero_point
        patches, _ = window.windows(x, self.weights.shape[1:3], self.strides, self.padding, self.dilation, fill=0.0)
        # float64 sums of int8 * int9 products are exact far beyond any filter size here
        return np.tensordot(patches, np.asarray(w, np.float64), axes=([3, 4, 5], [1, 2, 3])).astype(np.int64)

    filter_format = "OHWI"

    def emit_c(self, em, i, in_shape):
        o = self.weights.shape[0]
        return self.c_conv(em, i, o, int(np.prod(self.weights.shape[1:])), in_shape)

    tflite_needs_bias = True  # LiteRT CONV_2D: "Tensor at index 2 was optional but was expected"

    def tflite_options(self, schema, in_shape):
        o = schema.Conv2DOptionsT()
        o.padding = schema.Padding.SAME if self.padding == "same" else schema.Padding.VALID
        o.strideH, o.strideW = (int(v) for v in self.strides)
        o.dilationHFactor, o.dilationWFactor = (int(v) for v in self.dilation)
        o.fusedActivationFunction = act.fused_tflite(self.activation, schema)
        return schema.BuiltinOperator.CONV_2D, schema.BuiltinOptions.Conv2DOptions, o

    def manifest_entry(self):
        return {**super().manifest_entry(), "strides": list(self.strides), "padding": self.padding,
                "dilation": list(self.dilation)}

    @classmethod
    def example(cls):
        from tflite_export.ir.weights import BayesianWeights, ConstantWeights

        bias = np.random.default_rng(1).integers(-300, 300, size=5)
        return [Example(cls("conv", ConstantWeights.example((5, 3, 3, 3), 8), "relu", bias, strides=(2, 1),
                            padding="same"), (9, 7, 3)),
                Example(cls("conv4", ConstantWeights.example((4, 2, 3, 3), 4, False), "softplus", padding="valid"),
                        (6, 7, 3)),
                Example(cls("bconv", BayesianWeights.example((4, 3, 3, 2)), padding="same"), (6, 6, 2), (0.02, 3))]
