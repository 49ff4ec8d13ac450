"""FULLY_CONNECTED (SPEC.md section 4): `acc[n, o] = sum_i w[o, i] * (q[n, i] - zp_in)` (+ bias), requantized.

* `IntegerLayer` -- the Bayesian layer of SPEC v1 (flat fields: mu / sigma codes [R, C], layout, SIGMA_Q);
  the form the exporter, manifest reader, TFLite writer and C generator use today.
* `FullyConnected` -- the general op: any weight source (`BayesianWeights` [O, I] or constant int8 / int4,
  per-tensor or per-channel), optional bias.
Per-tensor multipliers use the float32 scale product (GetQuantizedConvolutionMultipler), per-channel ones the
float64 product (TFLM's per-channel FULLY_CONNECTED)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tflite_export import storage
from tflite_export.intmath import fixedpoint, sampler
from tflite_export.ir import activation as act
from tflite_export.ir.base import Example, Op
from tflite_export.ir.weighted import WeightedOp, range_to_affine


def accumulate(q_in, zero_point, w):
    """int32 accumulators sum_i w[o, i] * (q[n, i] - zp); the float64 matmul is exact (|acc| < 2^53)."""
    x = np.asarray(q_in, np.float64) - zero_point
    return (x @ np.asarray(w, np.float64).T).astype(np.int64)


@dataclass(eq=False)
class FullyConnected(WeightedOp):
    kind = "FULLY_CONNECTED"
    tflite_builtins = ("FULLY_CONNECTED", *act.SOFTPLUS_BUILTINS)

    def accumulate(self, q, w):
        q = np.asarray(q)
        if q.ndim != 2 or q.shape[1] != self.weights.shape[1]:
            raise ValueError(f"op {self.name!r}: input shape {q.shape[1:]} is not [{self.weights.shape[1]}] "
                             "(flatten with a RESHAPE first)")
        return accumulate(q, self.input_zero_point, w)

    def output_shape(self, in_shape):
        return (self.out_channels,)

    filter_format = "FC"

    def emit_c(self, em, i, in_shape):
        o, n = self.weights.shape
        return em.struct("qbnn_rt_layer", i, self.c_layer(em, i, o, n, moments=self.bayesian))

    def c_modes(self, in_shape):
        mult, shift = self.multipliers()  # one value each: rt_layer writes a scalar multiplier (no array)
        one_scale = np.all(mult == mult[0]) and np.all(shift == shift[0])
        # the moment tables are indexed by the I4_FUSED byte or the PACKED pair
        tabled = self.bayesian and self.weights.layout in (storage.LAYOUT_I4_FUSED, storage.LAYOUT_PACKED)
        return tuple(int(d) for d in self.weights.shape) if tabled and self.bias is None and one_scale else None

    def tflite_filter_bits(self):
        """TFLM's FULLY_CONNECTED rejects per-channel INT4 filters: those are written as INT8 (same codes)."""
        return 8 if self.weights.per_channel else self.weights.bits

    def tflite_options(self, schema, in_shape):
        o = schema.FullyConnectedOptionsT()
        o.fusedActivationFunction = act.fused_tflite(self.activation, schema)
        return schema.BuiltinOperator.FULLY_CONNECTED, schema.BuiltinOptions.FullyConnectedOptions, o

    @classmethod
    def example(cls):
        from tflite_export.ir.weights import BayesianWeights, ConstantWeights

        bias = np.random.default_rng(3).integers(-500, 500, size=12)
        return [Example(cls("fc", ConstantWeights.example((12, 40), 8), "relu", bias), (40,)),
                Example(cls("fc4", ConstantWeights.example((10, 30), 4, False), "softplus"), (30,), (0.02, -128)),
                Example(cls("bfc", BayesianWeights.example((9, 20))), (20,))]

    def multipliers(self):
        if np.asarray(self.weights.scales).size > 1:
            return super().multipliers()
        m, s = fixedpoint.fc_multiplier(self.input_scale, self.filter_scales[0], self.output_scale)
        return np.full(self.out_channels, m, np.int64), np.full(self.out_channels, s, np.int64)

    def real_scales(self):
        if np.asarray(self.weights.scales).size > 1:
            return super().real_scales()
        s = float(np.float32(np.float32(self.input_scale) * self.filter_scales[0]))
        return np.full(self.out_channels, s)


@dataclass(eq=False)
class IntegerLayer(act.Activated, Op):
    """One Bayesian FULLY_CONNECTED layer of SPEC v1 (weights [R, C] = [out, in]), activation fused."""

    c_scratch = True

    name: str
    index: int
    mu_codes: np.ndarray  # int16 [R, C]
    sigma_codes: np.ndarray  # int16 [R, C]
    weight_bits: int
    sigma_bits: int
    layout: int
    sigma_q: np.ndarray  # int32 [2^sb]
    sigma_range: tuple
    activation: str
    input_scale: np.float32
    input_zero_point: int
    output_scale: np.float32 = np.float32(1.0)  # FULLY_CONNECTED output
    output_zero_point: int = 0
    lut: np.ndarray | None = None  # int8[256] SoftPlus table, indexed by code + 128
    lut_scale: np.float32 | None = None
    lut_zero_point: int | None = None
    extra: dict = field(default_factory=dict)

    kind = "QBNN_FULLY_CONNECTED"
    tflite_builtins = ("FULLY_CONNECTED", *act.SOFTPLUS_BUILTINS)
    c_kind = "FULLY_CONNECTED"
    bayesian = True
    has_weights = True

    def emit_c(self, em, i, in_shape):
        em.require_table_layout(f"layer {self.name!r}", self.layout)
        (_, packed), = self.stored_tensors()
        rows, cols = self.shape
        mult, shift = self.multiplier
        layer = em.rt_layer(i, rows, cols, in_zero_point=self.input_zero_point, out_zero_point=self.output_zero_point,
                            multipliers=[mult], shifts=[shift], act_range=self.act_range, activation=self.activation,
                            lut=self.lut, moments=self,
                            bayesian=dict(weight_bits=self.weight_bits, sigma_bits=self.sigma_bits, layout=self.layout,
                                          index=self.index, packed=packed, sigma_q=self.sigma_q))
        return em.struct("qbnn_rt_layer", i, layer)

    def c_modes(self, in_shape):
        return tuple(int(d) for d in self.shape) if self.layout in (storage.LAYOUT_I4_FUSED, storage.LAYOUT_PACKED) \
            else None

    @classmethod
    def example(cls):
        from tflite_export.ir.weights import BayesianWeights

        out = []
        for name, (rows, cols), activation in (("l", (8, 30), "softplus"), ("l_relu", (6, 20), "relu")):
            w = BayesianWeights.example((rows, cols), seed=rows)
            out.append(Example(cls(name, 0, w.mu_codes, w.sigma_codes, 4, 4, w.layout, w.sigma_q, w.sigma_range,
                                   activation, np.float32(0.05), -5), (cols,)))
        return out

    @property
    def shape(self):
        return tuple(self.mu_codes.shape)

    @property
    def max_code(self):
        return 2 ** (self.weight_bits - 1) - 1

    @property
    def weight_scale(self):
        return np.float32(1.0 / self.max_code)

    @property
    def multiplier(self):
        return fixedpoint.fc_multiplier(self.input_scale, self.weight_scale, self.output_scale)

    def stored_tensors(self):
        return storage.pack(self.mu_codes, self.sigma_codes, self.layout, self.sigma_bits, self.weight_bits)

    def sample(self, stream):
        u = stream.take(self.mu_codes.size).reshape(self.shape)
        return sampler.sample_codes(self.mu_codes, self.sigma_codes, self.sigma_q, u, self.weight_bits)

    def accumulate(self, q_in, w):
        return accumulate(q_in, self.input_zero_point, w)

    def fully_connected(self, q_in, w, rounding="double"):
        mult, shift = self.multiplier
        lo, hi = self.act_range
        return fixedpoint.requantize(self.accumulate(q_in, w), mult, shift, self.output_zero_point, lo, hi, rounding)

    def forward(self, q_in, w, rounding="double"):
        return self.activate(self.fully_connected(q_in, w, rounding))

    def run(self, q, in_quant=None, w=None, rounding="double"):
        return self.forward(q, w, rounding)

    def output_shape(self, in_shape):
        return (self.shape[0],)

    def calibrate(self, qs, in_quant, ws):
        """SPEC.md section 4 calibration of this layer from int8 inputs `qs` and sampled weights `ws`."""
        self.input_scale, self.input_zero_point = in_quant
        real_scale = float(np.float32(np.float32(self.input_scale) * self.weight_scale))
        accs = [self.accumulate(q, w) for q, w in zip(qs, ws)]
        lo = min(float(a.min()) for a in accs) * real_scale
        hi = max(float(a.max()) for a in accs) * real_scale
        if self.activation == "relu":
            lo = 0.0
        self.output_scale, self.output_zero_point = range_to_affine(lo, hi)
        fc = [self.fully_connected(q, w) for q, w in zip(qs, ws)]
        if self.activation == "softplus":
            self.lut, self.lut_scale, self.lut_zero_point = act.calibrated_softplus_lut(
                fc, self.output_scale, self.output_zero_point)
        return [self.activate(f) for f in fc]

    def manifest_entry(self):
        r, c = self.shape
        tensors = storage.stored_tensor_entries(self)
        mult, shift = self.multiplier
        return {
            "name": self.name, "index": self.index, "rows": r, "cols": c, "activation": self.activation,
            "weight_bits": self.weight_bits, "sigma_bits": self.sigma_bits,
            "layout": storage.LAYOUT_NAMES[self.layout], "layout_id": self.layout,
            "sigma_range": list(self.sigma_range), "sigma_q": self.sigma_q.tolist(),
            "weight_scale": float(self.weight_scale), "weight_zero_point": 0,
            "input_scale": float(self.input_scale), "input_zero_point": int(self.input_zero_point),
            "output_scale": float(self.output_scale), "output_zero_point": int(self.output_zero_point),
            "multiplier": int(mult), "shift": int(shift),
            "activation_min": self.act_range[0], "activation_max": self.act_range[1],
            "softplus_lut": None if self.lut is None else self.lut.astype(int).tolist(),
            "softplus_scale": None if self.lut_scale is None else float(self.lut_scale),
            "softplus_zero_point": self.lut_zero_point,
            "stored_tensors": tensors, "stored_bytes": sum(t["bytes"] for t in tensors),
            "table_bytes": int(self.sigma_q.nbytes) + (256 if self.lut is not None else 0),
            "float32_mu_sigma_bytes": 8 * r * c,
        }

    @classmethod
    def from_manifest(cls, entry, arrays):
        """The layer a (kind-less, SPEC v1) manifest entry describes, codes unpacked from its stored `arrays`."""
        mu, sigma = storage.unpack(list(arrays.items()), int(entry["layout_id"]), int(entry["sigma_bits"]),
                                   (int(entry["rows"]), int(entry["cols"])), int(entry["weight_bits"]))
        s_lut = None if entry["softplus_scale"] is None else np.float32(entry["softplus_scale"])
        z_lut = None if entry["softplus_zero_point"] is None else int(entry["softplus_zero_point"])
        s_out, z_out = np.float32(entry["output_scale"]), int(entry["output_zero_point"])
        # the SoftPlus table follows from the scales (SPEC 5): derived, so a manifest LUT that does not fails
        lut = act.softplus_lut(s_out, z_out, s_lut, z_lut)[0] if entry["activation"] == "softplus" else None
        return cls(
            name=str(entry["name"]), index=int(entry["index"]), mu_codes=mu, sigma_codes=sigma,
            weight_bits=int(entry["weight_bits"]), sigma_bits=int(entry["sigma_bits"]), layout=int(entry["layout_id"]),
            sigma_q=np.asarray(entry["sigma_q"], np.int32), sigma_range=tuple(entry["sigma_range"]),
            activation=str(entry["activation"]), input_scale=np.float32(entry["input_scale"]),
            input_zero_point=int(entry["input_zero_point"]), output_scale=s_out, output_zero_point=z_out,
            lut=lut, lut_scale=s_lut, lut_zero_point=z_lut)

    def lower_tflite(self, graph, x):
        """QBNN_SAMPLE (or a split input) -> FULLY_CONNECTED [-> SoftPlus], as SPEC v1 files."""
        s = graph.s
        w = graph.sampled_filter(self.name, self, self.weight_scale, "FC")
        out = graph.tensor(f"{self.name}/fc", [1, self.shape[0]], s.TensorType.INT8, self.output_scale,
                           self.output_zero_point)
        fco = s.FullyConnectedOptionsT()
        fco.fusedActivationFunction = act.fused_tflite(self.activation, s)
        graph.op(s.BuiltinOperator.FULLY_CONNECTED, [x, w, -1], [out], s.BuiltinOptions.FullyConnectedOptions, fco)
        return act.lower_tflite(graph, self, out)
