"""GLOBAL_AVERAGE_POOL_2D (Keras GlobalAveragePooling2D): [H, W, C] -> [C], each channel's average over the whole
image with AVERAGE_POOL_2D's rounding (half away from zero, C's truncating division by the count H * W) and no
activation; output quantization = the input's. TFLite: an AVERAGE_POOL_2D with the full window (VALID, the
reference kernel's integer arithmetic exactly) and a RESHAPE to [1, C]."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tflite_export.ir.base import Example, Op


@dataclass(eq=False)
class GlobalAveragePool2D(Op):
    name: str

    kind = "GLOBAL_AVERAGE_POOL_2D"
    tflite_builtins = ("AVERAGE_POOL_2D", "RESHAPE")

    def output_shape(self, in_shape):
        h, w, c = in_shape
        return (c,)

    def run(self, q, in_quant=None, w=None, rounding="double"):
        q = np.asarray(q)
        total = q.astype(np.int64).sum(axis=(1, 2))
        count = q.shape[1] * q.shape[2]
        num = np.where(total > 0, total + count // 2, total - count // 2)
        return (np.sign(num) * (np.abs(num) // count)).astype(np.int8)  # C division truncates toward zero

    @classmethod
    def from_manifest(cls, entry, arrays=None):
        return cls(name=str(entry["name"]))

    @classmethod
    def example(cls):  # an even and an odd count (the rounding's half), one channel and many
        return [Example(cls("gap"), (6, 5, 7)), Example(cls("gap_even"), (4, 4, 1)), Example(cls("gap_wide"), (3, 9, 16))]

    def emit_c(self, em, i, in_shape):
        return "0"

    def lower_tflite(self, graph, x):
        s = graph.s
        h, w, c = graph.shape(x)[1:]
        o = s.Pool2DOptionsT()
        o.padding, o.strideH, o.strideW, o.filterHeight, o.filterWidth = s.Padding.VALID, 1, 1, int(h), int(w)
        o.fusedActivationFunction = s.ActivationFunctionType.NONE
        pooled = graph.int8(f"{self.name}/pool", [1, 1, 1, int(c)], graph.quant(x))
        graph.op(s.BuiltinOperator.AVERAGE_POOL_2D, [x], [pooled], s.BuiltinOptions.Pool2DOptions, o)
        r = s.ReshapeOptionsT()
        r.newShape = np.asarray([1, int(c)], np.int32)
        out = graph.int8(f"{self.name}/out", [1, int(c)], graph.quant(x))
        graph.op(s.BuiltinOperator.RESHAPE, [pooled], [out], s.BuiltinOptions.ReshapeOptions, r)
        return out
