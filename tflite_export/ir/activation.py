"""Every activation of the integer model, in one place (SPEC.md sections 4-5): the names an op accepts, the
fused clamp range (ReLU clamps at the output zero point, as TFLite's fused activation), the SoftPlus lookup
table (tie-free output scale) and applying it. Ops, calibration, the manifest reader and the C generator
all ask this module."""

from __future__ import annotations

import numpy as np

from tflite_export.intmath import fixedpoint

ACTIVATIONS = ("softplus", "relu", "linear")
FUSED = ("relu", "linear")  # clamp ranges; SoftPlus is a LUT after the op
TIE_MARGIN = 2e-3  # SPEC.md section 5


def check(activation, where="op"):
    if activation not in ACTIVATIONS:
        raise ValueError(f"{where}: activation {activation!r} is not supported (one of {list(ACTIVATIONS)})")
    return activation


def act_range(activation, output_zero_point):
    """(act_min, act_max) of the op's int8 output: CalculateActivationRangeQuantized for RELU / NONE."""
    if activation == "relu":
        return max(-128, int(output_zero_point)), 127
    return -128, 127


def softplus_lut(in_scale, in_zero_point, out_scale, out_zero_point):
    """SPEC.md section 5: LUT[q + 128] = round(softplus(float32 dequantized q) / s_out) + zp_out; also returns
    the unrounded quotients (to look for ties)."""
    x = (np.float64(np.float32(in_scale)) * (np.arange(-128, 128) - in_zero_point)).astype(np.float32)
    y = np.logaddexp(0.0, x.astype(np.float64))
    v = y / np.float64(np.float32(out_scale))
    return np.clip(fixedpoint.round_half_away(v) + out_zero_point, -128, 127).astype(np.int8), v


def calibrated_softplus_lut(pre_activations, in_scale, in_zero_point):
    """(LUT, s_out, zp_out) for int8 pre-activation codes seen in calibration: the output range is
    [0, softplus(largest input)] on the full uint8 span, zero point -128 (SPEC.md section 4)."""
    top = max(int(f.max()) for f in pre_activations)
    y_max = float(np.logaddexp(0.0, float(in_scale) * (top - in_zero_point)))
    lut, scale = tie_free_softplus_lut(in_scale, in_zero_point, np.float32(max(y_max, 1e-6) / 255.0))
    return lut, scale, -128


def tie_free_softplus_lut(in_scale, in_zero_point, out_scale, out_zero_point=-128):
    """(LUT, nudged float32 s_out): s_out *= 1 + 2^-16 until no live code is within TIE_MARGIN of a .5 tie."""
    scale = np.float32(out_scale)
    for _ in range(10000):
        lut, v = softplus_lut(in_scale, in_zero_point, scale, out_zero_point)
        live = v <= 255.5
        frac = v[live] - np.floor(v[live])
        if np.all(np.abs(frac - 0.5) >= TIE_MARGIN):
            return lut, scale
        scale = np.float32(float(scale) * (1.0 + 2.0**-16))
    raise RuntimeError(f"could not find a tie-free SoftPlus output scale near {out_scale}")


def apply(q, activation, lut=None):
    """The activation after the op's requantization (fused clamps are already in act_range)."""
    if activation == "softplus":
        return np.asarray(lut)[np.asarray(q, np.int64) + 128]
    return q


# SoftPlus in a TFLite graph (lower_tflite below); an op with an Activated output declares these builtins too.
SOFTPLUS_BUILTINS = ("DEQUANTIZE", "EXP", "ADD", "LOG", "QUANTIZE")


class Activated:
    """Mixin for ops with a fused activation: needs `activation`, `output_scale`, `output_zero_point`, `lut`,
    `lut_scale`, `lut_zero_point` attributes."""

    @property
    def act_range(self):
        return act_range(self.activation, self.output_zero_point)

    @property
    def next_scale(self):
        """(scale, zero point) of this op's output after its activation."""
        if self.activation == "softplus":
            return self.lut_scale, self.lut_zero_point
        return self.output_scale, self.output_zero_point

    def output_quant(self, in_quant=None):
        return self.next_scale

    def activate(self, q):
        return apply(q, self.activation, self.lut)


def fused_tflite(activation, schema):
    """The TFLite fusedActivationFunction of an op's output (SoftPlus is lowered after it, unfused)."""
    return schema.ActivationFunctionType.RELU if activation == "relu" else schema.ActivationFunctionType.NONE


def lower_tflite(graph, op, x):
    """`op`'s activation after its int8 output tensor `x`: SoftPlus as DEQUANTIZE, EXP, ADD(1), LOG, QUANTIZE
    (float32 in TFLM; the tie-free LUT scale makes the float path round like the LUT, SPEC.md section 5); ReLU and
    linear are fused (`fused_tflite`). Returns the activation's output tensor."""
    if op.activation != "softplus":
        return x
    s = graph.s
    TT, OP = s.TensorType, s.BuiltinOperator
    shape = graph.shape(x)
    one = graph.one()
    f = graph.tensor(f"{op.name}/dequantized", shape, TT.FLOAT32)
    graph.op(OP.DEQUANTIZE, [x], [f])
    e = graph.tensor(f"{op.name}/exp", shape, TT.FLOAT32)
    graph.op(OP.EXP, [f], [e])
    a = graph.tensor(f"{op.name}/one_plus_exp", shape, TT.FLOAT32)
    graph.op(OP.ADD, [e, one], [a], s.BuiltinOptions.AddOptions, s.AddOptionsT())
    lg = graph.tensor(f"{op.name}/softplus", shape, TT.FLOAT32)
    graph.op(OP.LOG, [a], [lg])
    y = graph.tensor(f"{op.name}/softplus_q", shape, TT.INT8, op.lut_scale, op.lut_zero_point)
    graph.op(OP.QUANTIZE, [lg], [y])
    return y
