"""The op protocol of the integer IR. An `IntegerModel` is a list of ops run in order on int8 NHWC (or [N, C])
tensors; each op is a dataclass in its own module under `tflite_export.ir`, listed once in `ir.registry`.

What an op provides (defaults here; an op overrides what applies):

* `kind` -- registry key (the TFLite builtin name, e.g. "CONV_2D"; "QBNN" ops are ours)
* `bayesian` -- True when its weights are sampled per MC pass (then `index` is its stream id, SPEC 3.1)
* `sample(stream)` -- int8 weight codes for one pass (Bayesian: drawn from `stream`; constant: the codes)
* `output_quant(in_quant)` -- (scale, zero point) of its int8 output given its input's
* `output_shape(in_shape)` -- per-example output shape
* `run(q, in_quant, w, rounding)` -- the numpy integer forward (bit-exact with TFLite's reference kernels)
* `calibrate(qs, in_quant, ws)` -- fix its own quantization from the int8 inputs of several passes (SPEC 4);
  returns its outputs (default: an op that keeps its input's quantization just runs)
* `stored_tensors()` -- [(name, array)] the exporter writes (codes, packed)
* `manifest_entry()` -- its manifest.json dict (with "kind")
* `lower_tflite(graph, x)` -- its TFLite operators
* `emit_c(em, i, in_shape)` -- its C parameters (the struct its micro/ops kernel declares; the kernel's header
  also sizes its scratch, which the generated arena plan takes from there)
* `c_scratch` -- True when its C kernel needs arena scratch: the kernel's header micro/ops/qbnn_op_<name>.h then
  defines QBNN_<KIND>_X_ELEMS / QBNN_<KIND>_FILTER_ELEMS, the generated arena plan's terms (a kernel with neither
  parameters nor scratch has no header)
* `c_modes(in_shape)` -- whether the C runtime's HYBRID / PFP modes can use it
* `example()` -- [Example(op, per-example input shape, input quant)]: small instances the registry-driven tests
  run through numpy, TFLM and the C runtime (every option the op's kernels branch on, Bayesian or constant)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class Op:
    kind = None
    # TFLite builtin operators (schema names) that `lower_tflite` may emit: the TFLM op resolver of a driver is
    # generated from these (tflite_export.tflm_ops), and the writer refuses any builtin an op did not declare.
    tflite_builtins = ()
    bayesian = False
    has_weights = False
    c_scratch = False

    def sample(self, stream):
        return None

    def output_quant(self, in_quant):
        return in_quant

    def output_shape(self, in_shape):
        return tuple(in_shape)

    def run(self, q, in_quant, w=None, rounding="double"):
        raise NotImplementedError(f"{type(self).__name__}.run")

    def calibrate(self, qs, in_quant, ws):
        return [self.run(q, in_quant, w) for q, w in zip(qs, ws)]

    def stored_tensors(self):
        return []

    def manifest_entry(self):
        return {"kind": self.kind, "name": self.name}

    def lower_tflite(self, graph, x):
        raise NotImplementedError(f"op {self.kind}: TFLite lowering is not implemented yet")

    def emit_c(self, em, i, in_shape):
        """Writes the op's C parameters into `em` (`c_source.CEmitter`); returns the `qbnn_op.params` expression."""
        raise NotImplementedError(f"op {self.kind}: C emission is not implemented yet")

    @classmethod
    def example(cls):
        """[Example]: instances covering the op's options, for the registry-driven tests."""
        raise NotImplementedError(f"op {cls.kind}: example() is not implemented")

    def c_modes(self, in_shape):
        """(rows, cols) when the C runtime's HYBRID / PFP modes can start at this op (qbnn_plan.c's moments_ok:
        a Bayesian dense layer, one scale, no bias, with its moment table), else None."""
        return None


def quant_entry(scale, zero_point):
    return {"scale": None if scale is None else float(scale), "zero_point": None if zero_point is None else int(zero_point)}


@dataclass
class Example:
    """One test instance of an op: the op (output quantization uncalibrated), its per-example input shape and the
    (scale, zero point) of its int8 input."""

    op: Op
    in_shape: tuple
    in_quant: tuple = (np.float32(0.05), -5)
