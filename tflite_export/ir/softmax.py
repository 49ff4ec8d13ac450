"""SOFTMAX int8 -> int8 (SPEC.md section 7): TFLite's reference kernel, output scale 1/256, zero point -128;
its input scale is that of the op before it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tflite_export.intmath.softmax import softmax_int8, softmax_params
from tflite_export.ir.base import Example, Op

SOFTMAX_SCALE = np.float32(1.0 / 256.0)
SOFTMAX_ZERO_POINT = -128


@dataclass(eq=False)
class Softmax(Op):
    name: str = "softmax"
    beta: float = 1.0

    kind = "SOFTMAX"
    tflite_builtins = ("SOFTMAX",)

    def output_quant(self, in_quant):
        return SOFTMAX_SCALE, SOFTMAX_ZERO_POINT

    def run(self, q, in_quant, w=None, rounding="double"):
        return softmax_int8(q, in_quant[0], self.beta)

    @classmethod
    def example(cls):
        return [Example(cls("softmax"), (10,), (np.float32(0.1), 3))]

    def params(self, in_quant):
        return dict(zip(("input_multiplier", "input_left_shift", "diff_min"), softmax_params(in_quant[0], self.beta)))

    def lower_tflite(self, graph, x):
        s = graph.s
        probs = graph.int8("probs", graph.shape(x), (SOFTMAX_SCALE, SOFTMAX_ZERO_POINT))
        o = s.SoftmaxOptionsT()
        o.beta = float(self.beta)
        graph.op(s.BuiltinOperator.SOFTMAX, [x], [probs], s.BuiltinOptions.SoftmaxOptions, o)
        return probs
