"""MAX_POOL_2D and AVERAGE_POOL_2D (TFLite reference_integer_ops pooling, int8): output quantization equals
the input's. Max: the largest in-image tap. Average: `sum / count` over the in-image taps only, rounded half
away from zero with C's truncating division (`(s + count/2) / count` for s > 0, `(s - count/2) / count`
otherwise). Both then clamp to the fused activation range (ReLU: at the zero point)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tflite_export.intmath import window
from tflite_export.ir import activation as act
from tflite_export.ir.base import Example, Op


@dataclass(eq=False)
class _Pool2D(Op):
    c_scratch = True  # sized by micro/ops/qbnn_op_pool.h (with its parameter struct)
    name: str
    pool_size: tuple = (2, 2)
    strides: tuple = (2, 2)
    padding: str = "valid"
    activation: str = "linear"

    def __post_init__(self):
        self.padding = window.check_padding(self.padding, f"op {self.name!r}")
        if self.activation not in act.FUSED:
            raise ValueError(f"op {self.name!r}: pooling fuses only {list(act.FUSED)}; received {self.activation!r}")

    def output_shape(self, in_shape):
        h, w, c = in_shape
        return (window.out_size(self.padding, h, self.pool_size[0], self.strides[0]),
                window.out_size(self.padding, w, self.pool_size[1], self.strides[1]), c)

    def run(self, q, in_quant, w=None, rounding="double"):
        q = np.asarray(q)
        patches, valid = window.windows(q.astype(np.int64), self.pool_size, self.strides, self.padding)
        out = self.reduce(patches, valid)
        lo, hi = act.act_range(self.activation, in_quant[1])
        return np.clip(out, lo, hi).astype(np.int8)

    def manifest_entry(self):
        return {"kind": self.kind, "name": self.name, "pool_size": list(self.pool_size),
                "strides": list(self.strides), "padding": self.padding, "activation": self.activation}

    @classmethod
    def from_manifest(cls, entry, arrays=None):
        return cls(name=str(entry["name"]), pool_size=tuple(entry["pool_size"]), strides=tuple(entry["strides"]),
                   padding=str(entry["padding"]), activation=str(entry["activation"]))

    @classmethod
    def example(cls):  # 3 and 5 channels: the C max pool's 4-channel words and its per-channel tail
        return [Example(cls("pool", (3, 3), (2, 2), "same"), (9, 7, 5)),
                Example(cls("pool_valid", (2, 2), (2, 2), "valid", "relu"), (8, 6, 3)),
                Example(cls("pool_s1", (3, 2), (2, 1), "same"), (7, 5, 4))]

    def emit_c(self, em, i, in_shape):
        (fh, fw), (sh, sw), (h, w) = self.pool_size, self.strides, in_shape[:2]
        pads = (window.pad_before(self.padding, h, fh, sh), window.pad_before(self.padding, w, fw, sw))
        lo, hi = act.act_range(self.activation, em.quants[i][1])
        return em.struct("qbnn_pool_params", i, {"filter_h": fh, "filter_w": fw, "stride_h": sh, "stride_w": sw,
                                                 "pad_top": pads[0], "pad_left": pads[1], "act_min": lo, "act_max": hi})

    def lower_tflite(self, graph, x):
        s = graph.s
        o = s.Pool2DOptionsT()
        o.padding = s.Padding.SAME if self.padding == "same" else s.Padding.VALID
        o.strideH, o.strideW = (int(v) for v in self.strides)
        o.filterHeight, o.filterWidth = (int(v) for v in self.pool_size)
        o.fusedActivationFunction = act.fused_tflite(self.activation, s)
        shape = graph.shape(x)
        out = graph.int8(f"{self.name}/out", [1, *self.output_shape(tuple(shape[1:]))], graph.quant(x))
        graph.op(getattr(s.BuiltinOperator, self.kind), [x], [out], s.BuiltinOptions.Pool2DOptions, o)
        return out


@dataclass(eq=False)
class MaxPool2D(_Pool2D):
    kind = "MAX_POOL_2D"
    tflite_builtins = ("MAX_POOL_2D",)

    def reduce(self, patches, valid):
        return np.where(valid[None, ..., None], patches, np.iinfo(np.int64).min).max(axis=(3, 4))


@dataclass(eq=False)
class AveragePool2D(_Pool2D):
    kind = "AVERAGE_POOL_2D"
    tflite_builtins = ("AVERAGE_POOL_2D",)

    def reduce(self, patches, valid):
        total = np.where(valid[None, ..., None], patches, 0).sum(axis=(3, 4))
        count = valid.sum(axis=(2, 3))[None, :, :, None].astype(np.int64)
        if np.any(count == 0):
            raise ValueError(f"op {self.name!r}: a pooling window lies entirely in the padding")
        num = np.where(total > 0, total + count // 2, total - count // 2)
        return np.sign(num) * (np.abs(num) // count)  # C division truncates toward zero
