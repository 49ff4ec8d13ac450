"""The numpy integer engine of SPEC.md: `IntegerModel` holds every code, scale and table of an
exported model and runs it bit-exactly (sampling, FULLY_CONNECTED, SoftPlus LUT, int8 softmax,
uncertainty from S samples)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tflite_export import fixedpoint, sampler, storage
from tflite_export.softmax import softmax_int8

INPUT_SCALE = np.float32(1.0 / 255.0)
INPUT_ZERO_POINT = -128
SOFTMAX_SCALE = np.float32(1.0 / 256.0)
SOFTMAX_ZERO_POINT = -128
ACTIVATIONS = ("softplus", "relu", "linear")


@dataclass
class IntegerLayer:
    """One Bayesian FULLY_CONNECTED layer (weights [R, C] = [out, in])."""

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

    @property
    def act_range(self):
        if self.activation == "relu":
            return max(-128, self.output_zero_point), 127
        return -128, 127

    @property
    def next_scale(self):
        """(scale, zero point) of this layer's output after its activation."""
        if self.activation == "softplus":
            return self.lut_scale, self.lut_zero_point
        return self.output_scale, self.output_zero_point

    def stored_tensors(self):
        return storage.pack(self.mu_codes, self.sigma_codes, self.layout, self.sigma_bits)

    def sample(self, stream):
        u = stream.take(self.mu_codes.size).reshape(self.shape)
        return sampler.sample_codes(self.mu_codes, self.sigma_codes, self.sigma_q, u, self.weight_bits)

    def accumulate(self, q_in, w):
        """int32 accumulators sum_c w[r, c] * (q[c] - zp_in); float64 matmul is exact (< 2^53)."""
        x = np.asarray(q_in, np.float64) - self.input_zero_point
        return (x @ np.asarray(w, np.float64).T).astype(np.int64)

    def fully_connected(self, q_in, w, rounding="double"):
        mult, shift = self.multiplier
        lo, hi = self.act_range
        return fixedpoint.requantize(self.accumulate(q_in, w), mult, shift, self.output_zero_point, lo, hi, rounding)

    def forward(self, q_in, w, rounding="double"):
        q = self.fully_connected(q_in, w, rounding)
        if self.activation == "softplus":
            q = self.lut[q.astype(np.int64) + 128]
        return q


def softplus_lut(in_scale, in_zero_point, out_scale, out_zero_point):
    """SPEC.md section 5: LUT[q + 128] = round(softplus(float32 dequantized q) / s_out) + zp_out."""
    x = (np.float64(np.float32(in_scale)) * (np.arange(-128, 128) - in_zero_point)).astype(np.float32)
    y = np.logaddexp(0.0, x.astype(np.float64))
    v = y / np.float64(np.float32(out_scale))
    return np.clip(fixedpoint.round_half_away(v) + out_zero_point, -128, 127).astype(np.int8), v


class IntegerModel:
    """Bayesian MLP in integers: layers + final int8 softmax."""

    def __init__(self, layers, default_seed=0, num_classes=None, rounding="double"):
        self.layers = list(layers)
        if not self.layers:
            raise ValueError("IntegerModel needs at least one layer")
        self.default_seed = int(default_seed)
        self.num_classes = num_classes or self.layers[-1].shape[0]
        # "double": TFLM and the SPEC; "single": LiteRT's TFLITE_SINGLE_ROUNDING build (SPEC.md section 8)
        self.rounding = rounding

    @property
    def input_dim(self):
        return self.layers[0].shape[1]

    def streams(self, seed=None):
        seed = self.default_seed if seed is None else seed
        return [sampler.ByteStream(seed, layer.index) for layer in self.layers]

    def sample_weights(self, streams):
        return [layer.sample(s) for layer, s in zip(self.layers, streams)]

    @staticmethod
    def quantize_input(x):
        """uint8 pixels -> p - 128; float pixels in [0, 1] -> TFLite QUANTIZE (scale 1/255, zp -128)."""
        x = np.asarray(x)
        if x.dtype == np.uint8:
            return (x.astype(np.int16) - 128).astype(np.int8)
        if x.dtype == np.int8:
            return x
        return fixedpoint.quantize_to_int8(x, INPUT_SCALE, INPUT_ZERO_POINT)

    def logits(self, q_in, weights):
        q = self.quantize_input(q_in)
        for layer, w in zip(self.layers, weights):
            q = layer.forward(q, w, self.rounding)
        return q

    def forward(self, x, weights):
        """int8 softmax codes [N, K] for one weight sample."""
        last = self.layers[-1]
        return softmax_int8(self.logits(x, weights), last.output_scale)

    def predict_codes(self, x, num_samples=30, seed=None, streams=None, batch_size=4096):
        """[S, N, K] int8 softmax codes; sample s continues the streams left by sample s-1."""
        streams = self.streams(seed) if streams is None else streams
        q = self.quantize_input(x)
        out = np.empty((num_samples, q.shape[0], self.num_classes), np.int8)
        for s in range(num_samples):
            w = self.sample_weights(streams)
            for i in range(0, q.shape[0], batch_size):
                out[s, i:i + batch_size] = self.forward(q[i:i + batch_size], w)
        return out


def uncertainty(codes):
    """SPEC.md section 7 from [S, N, K] softmax codes: dict of mean_prob, prediction, entropies, MI."""
    p = np.asarray(codes, np.int64) + 128  # P_s[c]
    a = p.sum(axis=0)  # A[c], [N, K]
    mean = a / a.sum(axis=-1, keepdims=True)
    ps = p / p.sum(axis=-1, keepdims=True)

    def ent(q):
        with np.errstate(divide="ignore", invalid="ignore"):
            return -np.sum(np.where(q > 0, q * np.log(q), 0.0), axis=-1)

    pred_ent = ent(mean)
    exp_ent = ent(ps).mean(axis=0)
    return {
        "sums": a,
        "mean_prob": mean,
        "prediction": np.argmax(a, axis=-1),
        "predictive_entropy": pred_ent,
        "expected_entropy": exp_ent,
        "mutual_information": pred_ent - exp_ent,
    }
