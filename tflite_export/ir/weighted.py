"""`WeightedOp`: what FULLY_CONNECTED, CONV_2D and DEPTHWISE_CONV_2D share -- a weight source (Bayesian or
constant), an optional int32 bias, TFLite's per-channel requantization (reference_integer_ops: acc + bias,
MultiplyByQuantizedMultiplier per output channel, + zp_out, clamp to the fused activation range), the
activation (SoftPlus LUT) and the calibration of the output scale. An op module adds only its accumulation
(`accumulate`) and its shape rule."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from tflite_export.intmath import fixedpoint
from tflite_export.ir import activation as act
from tflite_export.ir.base import Op, quant_entry

INPUT_SCALE = np.float32(1.0 / 255.0)
INPUT_ZERO_POINT = -128


def range_to_affine(rmin, rmax):
    """SPEC.md section 4: int8 (scale, zero point) covering [min(0, rmin), max(0, rmax)]."""
    rmin, rmax = min(0.0, float(rmin)), max(0.0, float(rmax))
    if rmax - rmin <= 0:
        rmax = rmin + 1e-6
    scale = np.float32((rmax - rmin) / 255.0)
    zp = int(np.clip(np.sign(-128 - rmin / scale) * np.floor(abs(-128 - rmin / float(scale)) + 0.5), -128, 127))
    return scale, zp


@dataclass(eq=False)
class WeightedOp(act.Activated, Op):
    c_scratch = True  # int16 operands and filter (its kernel header's macros)
    name: str
    weights: object  # BayesianWeights | ConstantWeights
    activation: str = "linear"
    bias: np.ndarray | None = None  # int32 [out channels], scale s_in * s_w[c], zero point 0
    input_scale: np.float32 = INPUT_SCALE
    input_zero_point: int = INPUT_ZERO_POINT
    output_scale: np.float32 = np.float32(1.0)
    output_zero_point: int = 0
    lut: np.ndarray | None = None
    lut_scale: np.float32 | None = None
    lut_zero_point: int | None = None

    has_weights = True
    channel_axis = 0  # output channels of the filter (OHWI, [O, I]: 0; 1HWO: 3)

    def __post_init__(self):
        act.check(self.activation, f"op {self.name!r}")
        if self.bias is not None:
            self.bias = np.asarray(self.bias, np.int64).reshape(-1)
            if self.bias.size != self.out_channels or np.abs(self.bias).max(initial=0) >= 2**31:
                raise ValueError(f"op {self.name!r}: bias must be int32[{self.out_channels}]; received "
                                 f"{self.bias.size} values")

    @property
    def bayesian(self):
        return bool(self.weights.bayesian)

    @property
    def index(self):
        return self.weights.index

    @property
    def out_channels(self):
        return int(self.weights.shape[self.channel_axis])

    @property
    def filter_scales(self):
        """float32 per output channel (a per-tensor scale broadcast, as TFLite does)."""
        s = np.asarray(self.weights.scales, np.float32)
        return np.broadcast_to(s, (self.out_channels,)) if s.size == 1 else s

    def sample(self, stream):
        return self.weights.sample(stream)

    def multipliers(self):
        """(multipliers, shifts) per output channel: PopulateConvolutionQuantizationParams."""
        return fixedpoint.per_channel_multipliers(self.input_scale, self.filter_scales, self.output_scale)

    def real_scales(self):
        """float64 real value of one accumulator unit per output channel (for calibration)."""
        return np.float64(np.float32(self.input_scale)) * self.filter_scales.astype(np.float64)

    def accumulate(self, q, w):
        raise NotImplementedError

    def requantize(self, acc, rounding="double"):
        if self.bias is not None:
            acc = acc + self.bias
        mult, shift = self.multipliers()
        lo, hi = self.act_range
        return fixedpoint.requantize_per_channel(acc, mult, shift, self.output_zero_point, lo, hi, rounding)

    def run(self, q, in_quant=None, w=None, rounding="double"):
        w = self.weights.sample(None) if w is None and not self.bayesian else w
        return self.activate(self.requantize(self.accumulate(q, w), rounding))

    def calibrate(self, qs, in_quant, ws):
        """Set input / output quantization (and the SoftPlus LUT) from the int8 inputs `qs` of several passes with
        weights `ws` (SPEC.md section 4); returns the int8 outputs."""
        self.input_scale, self.input_zero_point = in_quant
        accs = [self.accumulate(q, w) + (0 if self.bias is None else self.bias) for q, w in zip(qs, ws)]
        real = [a * self.real_scales() for a in accs]
        lo = 0.0 if self.activation == "relu" else min(float(r.min()) for r in real)
        self.output_scale, self.output_zero_point = range_to_affine(lo, max(float(r.max()) for r in real))
        mult, shift = self.multipliers()
        lo_q, hi_q = self.act_range
        fc = [fixedpoint.requantize_per_channel(a, mult, shift, self.output_zero_point, lo_q, hi_q) for a in accs]
        if self.activation == "softplus":
            self.lut, self.lut_scale, self.lut_zero_point = act.calibrated_softplus_lut(
                fc, self.output_scale, self.output_zero_point)
        return [self.activate(f) for f in fc]

    def stored_tensors(self):
        out = list(self.weights.stored_tensors())
        if self.bias is not None:
            out.append(("bias", self.bias.astype("<i4")))
        return out

    def manifest_entry(self):
        mult, shift = self.multipliers()
        w = self.weights
        entry = {"kind": self.kind, "name": self.name, "bayesian": self.bayesian, "filter_shape": list(w.shape),
                 "weight_bits": int(w.weight_bits if self.bayesian else w.bits),
                 "filter_scales": [float(s) for s in np.asarray(w.scales).reshape(-1)],
                 "channel_axis": self.channel_axis, "activation": self.activation,
                 "input": quant_entry(self.input_scale, self.input_zero_point),
                 "output": quant_entry(self.output_scale, self.output_zero_point),
                 "multipliers": [int(m) for m in mult], "shifts": [int(s) for s in shift],
                 "activation_min": self.act_range[0], "activation_max": self.act_range[1],
                 "softplus_lut": None if self.lut is None else self.lut.astype(int).tolist(),
                 "softplus": quant_entry(self.lut_scale, self.lut_zero_point),
                 "bias": None if self.bias is None else self.bias.tolist()}
        if self.bayesian:
            entry.update(index=int(w.index), sigma_bits=int(w.sigma_bits), layout_id=int(w.layout),
                         sigma_q=w.sigma_q.tolist(), sigma_range=list(w.sigma_range))
        return entry

    def c_layer(self, em, i, rows, cols, moments=False):
        """The op's `qbnn_rt_layer` fields (weights flattened to [rows, cols] in the stream's order); with
        `moments`, its moment table too (SPEC 11)."""
        w = self.weights
        mult, shift = self.multipliers()
        common = dict(in_zero_point=self.input_zero_point, out_zero_point=self.output_zero_point, multipliers=mult,
                      shifts=shift, act_range=self.act_range, activation=self.activation, lut=self.lut, bias=self.bias)
        if self.bayesian:
            em.require_table_layout(f"op {self.name!r}", w.layout)
            (_, packed), = w.stored_tensors()
            return em.rt_layer(i, rows, cols, bayesian=dict(weight_bits=w.weight_bits, sigma_bits=w.sigma_bits,
                                                            layout=w.layout, index=w.index, packed=packed,
                                                            sigma_q=w.sigma_q), moments=self if moments else None,
                               **common)
        return em.rt_layer(i, rows, cols, constant=(w.codes, w.bits), **common)

    def c_conv(self, em, i, rows, cols, in_shape):
        """CONV_2D / DEPTHWISE_CONV_2D: its `qbnn_conv_params` (TFLite's padding offsets); returns its address."""
        from tflite_export.intmath import window

        if tuple(self.dilation) != (1, 1):
            raise ValueError(f"op {self.name!r}: the C runtime has no dilated convolutions; received {self.dilation}")
        fh, fw = self.weights.shape[1:3]
        (sh, sw), (h, w) = self.strides, in_shape[:2]
        pads = (window.pad_before(self.padding, h, fh, sh), window.pad_before(self.padding, w, fw, sw))
        return em.struct("qbnn_conv_params", i, {"w": self.c_layer(em, i, rows, cols), "filter_h": fh, "filter_w": fw,
                                                 "stride_h": sh, "stride_w": sw, "pad_top": pads[0],
                                                 "pad_left": pads[1]})

    tflite_needs_bias = False  # True: write a zero int32 bias when the op has none (SPEC 6: TFLM / LiteRT need one)

    def tflite_filter_bits(self):
        """Bits of a constant filter in model.tflite: its stored bits (int4 packed, TFLM unpacks it at init)."""
        return self.weights.bits

    def lower_tflite(self, graph, x):
        """[QBNN_SAMPLE ->] the builtin op (FULLY_CONNECTED / CONV_2D / DEPTHWISE_CONV_2D, `tflite_options`) with
        its filter sampled (Bayesian: QBNN_SAMPLE, or a graph input in the split model) or constant, an optional
        int32 bias, the fused activation, then SoftPlus when it applies."""
        s = graph.s
        in_shape = graph.shape(x)[1:]
        if self.bayesian:
            filt = graph.sampled_filter(self.name, self.weights, self.filter_scales[0], self.filter_format)
        else:
            filt = graph.constant_filter(self.name, self.weights, self.tflite_filter_bits())
        bias = -1
        values = np.zeros(self.out_channels, np.int64) if self.bias is None and self.tflite_needs_bias else self.bias
        if values is not None:
            bias = graph.tensor(f"{self.name}/bias", [self.out_channels], s.TensorType.INT32, self.real_scales(),
                                np.zeros(self.out_channels, np.int64), data=values.astype("<i4").tobytes())
        out = graph.tensor(f"{self.name}/out", [1, *self.output_shape(tuple(in_shape))], s.TensorType.INT8,
                           self.output_scale, self.output_zero_point)
        builtin, options_type, options = self.tflite_options(s, in_shape)
        graph.op(builtin, [x, filt, bias], [out], options_type, options)
        return act.lower_tflite(graph, self, out)

    @classmethod
    def from_manifest(cls, entry, arrays):
        """The op a manifest entry describes, with the stored code `arrays` ({name: array}) read from model.tflite
        (the inverse of `manifest_entry` + `stored_tensors`)."""
        from tflite_export.ir.weights import BayesianWeights, ConstantWeights

        shape = tuple(int(v) for v in entry["filter_shape"])
        if entry["bayesian"]:
            w = BayesianWeights.from_stored(arrays, shape, int(entry["weight_bits"]), int(entry["sigma_bits"]),
                                            int(entry["layout_id"]), entry["sigma_q"], int(entry["index"]),
                                            tuple(entry["sigma_range"]), int(entry["channel_axis"]))
        else:
            w = ConstantWeights.from_stored(arrays, shape, entry["filter_scales"], int(entry["weight_bits"]),
                                            int(entry["channel_axis"]))
        names = {f.name for f in fields(cls)}
        extra = {k: (tuple(entry[k]) if isinstance(entry[k], list) else entry[k])
                 for k in ("strides", "padding", "dilation") if k in names}
        q = lambda key: (None if entry[key]["scale"] is None else np.float32(entry[key]["scale"]),  # noqa: E731
                         entry[key]["zero_point"])
        (s_in, z_in), (s_out, z_out), (s_lut, z_lut) = q("input"), q("output"), q("softplus")
        # the SoftPlus table follows from the scales (SPEC 5): derived, so a manifest LUT that does not fails
        lut = act.softplus_lut(s_out, z_out, s_lut, z_lut)[0] if entry["activation"] == "softplus" else None
        return cls(name=str(entry["name"]), weights=w, activation=str(entry["activation"]), bias=entry["bias"],
                   input_scale=s_in, input_zero_point=int(z_in), output_scale=s_out, output_zero_point=int(z_out),
                   lut=lut, lut_scale=s_lut,
                   lut_zero_point=None if z_lut is None else int(z_lut), **extra)
