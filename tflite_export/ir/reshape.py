"""RESHAPE (and Keras Flatten): a view of the int8 codes in row-major (NHWC) order, quantization unchanged."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tflite_export.ir.base import Example, Op


@dataclass(eq=False)
class Reshape(Op):
    name: str
    shape: tuple = (-1,)  # per-example target shape; one -1 allowed

    kind = "RESHAPE"
    tflite_builtins = ("RESHAPE",)

    def output_shape(self, in_shape):
        return tuple(np.empty((1, *in_shape), np.int8).reshape(1, *self.shape).shape[1:])

    def run(self, q, in_quant=None, w=None, rounding="double"):
        q = np.asarray(q)
        return q.reshape(q.shape[0], *self.output_shape(q.shape[1:]))

    def emit_c(self, em, i, in_shape):
        return "0"

    def manifest_entry(self):
        return {"kind": self.kind, "name": self.name, "shape": list(self.shape)}

    @classmethod
    def example(cls):  # a flatten and a 2-D per-example shape (a 1-D conv's (steps, channels))
        return [Example(cls("flatten"), (3, 4, 5)), Example(cls("steps", (12, -1)), (3, 4, 5))]

    @classmethod
    def from_manifest(cls, entry, arrays=None):
        return cls(name=str(entry["name"]), shape=tuple(int(v) for v in entry["shape"]))

    def lower_tflite(self, graph, x):
        s = graph.s
        shape = [1, *self.output_shape(tuple(graph.shape(x)[1:]))]
        o = s.ReshapeOptionsT()
        o.newShape = np.asarray(shape, np.int32)
        out = graph.int8(f"{self.name}/out", shape, graph.quant(x))
        graph.op(s.BuiltinOperator.RESHAPE, [x], [out], s.BuiltinOptions.ReshapeOptions, o)
        return out
