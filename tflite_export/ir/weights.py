"""Weight sources of the weighted ops (FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D): the op does the
arithmetic, the source says where the int8 filter codes of one pass come from.

* `BayesianWeights` -- mu / sigma codes of any filter shape ([O, I], OHWI, 1HWO), sampled by the SPEC
  section 3 sampler: one stream byte per weight in the row-major order of the filter shape; stored as the
  section 2 layouts of the codes flattened to [dims[0], prod(dims[1:])]. Scale 1/M per tensor.
* `ConstantWeights` -- fixed int8 codes, narrow range [-M, M] (M = 127 for int8, 7 for int4), per-tensor or
  per-channel float32 scales along `channel_axis`; stored as int8 or as packed int4 (TFLite's nibble order).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tflite_export import storage
from tflite_export.intmath import sampler


@dataclass(eq=False)
class BayesianWeights:
    mu_codes: np.ndarray  # int16, filter shape
    sigma_codes: np.ndarray  # int16, filter shape
    weight_bits: int
    sigma_bits: int
    layout: int
    sigma_q: np.ndarray  # int32 [2^sb]
    index: int  # stream id (SPEC 3.1)
    sigma_range: tuple = (2.0**-10, 1.0)
    channel_axis: int = 0

    bayesian = True

    def __post_init__(self):
        self.mu_codes = np.asarray(self.mu_codes, np.int16)
        self.sigma_codes = np.asarray(self.sigma_codes, np.int16)
        self.sigma_q = np.asarray(self.sigma_q, np.int32)
        if self.mu_codes.shape != self.sigma_codes.shape or self.mu_codes.ndim < 2:
            raise ValueError(f"mu and sigma codes must have one filter shape of rank >= 2; received "
                             f"{self.mu_codes.shape} and {self.sigma_codes.shape}")
        m = self.max_code
        if np.abs(self.mu_codes).max(initial=0) > m or self.sigma_codes.min(initial=0) < 0 \
                or self.sigma_codes.max(initial=0) >= 2**self.sigma_bits:
            raise ValueError(f"stream {self.index}: codes outside mu in [-{m}, {m}] / sigma in [0, 2^{self.sigma_bits})")

    @property
    def shape(self):
        return tuple(self.mu_codes.shape)

    @property
    def max_code(self):
        return 2 ** (int(self.weight_bits) - 1) - 1

    @property
    def scales(self):
        return np.array([1.0 / self.max_code], np.float32)

    def sample(self, stream):
        u = stream.take(self.mu_codes.size).reshape(self.shape)
        return sampler.sample_codes(self.mu_codes, self.sigma_codes, self.sigma_q, u, self.weight_bits)

    def mean_codes(self):
        return self.mu_codes.astype(np.int8)

    @classmethod
    def example(cls, shape, index=0, channel_axis=0, seed=0):
        """Tiny random JQ-4 weights (I4_FUSED, 16 log-spaced sigma levels in [2^-10, 1]) for tests and op examples."""
        rng = np.random.default_rng(seed)
        levels = np.exp(np.linspace(np.log(2.0**-10), 0.0, 16))
        sigma_q = np.round(levels * 7 * 2**sampler.SIGMA_FRAC_BITS).astype(np.int32)
        return cls(rng.integers(-7, 8, size=shape), rng.integers(0, 16, size=shape), 4, 4, storage.LAYOUT_I4_FUSED,
                   sigma_q, index, channel_axis=channel_axis)

    def stored_tensors(self):
        flat = (self.shape[0], -1)
        return storage.pack(self.mu_codes.reshape(flat), self.sigma_codes.reshape(flat), self.layout, self.sigma_bits,
                            self.weight_bits)

    @classmethod
    def from_stored(cls, arrays, shape, weight_bits, sigma_bits, layout, sigma_q, index, sigma_range=(2.0**-10, 1.0),
                    channel_axis=0):
        """Inverse of `stored_tensors` (`arrays`: {name: array} as written)."""
        flat = (shape[0], int(np.prod(shape[1:])))
        mu, sigma = storage.unpack(list(arrays.items()), layout, sigma_bits, flat, weight_bits)
        return cls(mu.reshape(shape), sigma.reshape(shape), weight_bits, sigma_bits, layout, sigma_q, index,
                   sigma_range, channel_axis)


@dataclass(eq=False)
class ConstantWeights:
    codes: np.ndarray  # int8, filter shape
    scales: np.ndarray  # float32 [1] (per tensor) or [channels] (per channel along channel_axis)
    bits: int = 8  # storage: 8 (int8) or 4 (packed int4)
    channel_axis: int = 0

    bayesian = False

    def __post_init__(self):
        if self.bits not in (4, 8):
            raise ValueError(f"constant weights are int8 or int4; received bits={self.bits}")
        self.codes = np.asarray(self.codes)
        self.scales = np.asarray(self.scales, np.float32).reshape(-1)
        m = self.max_code
        if self.codes.ndim < 2 or np.abs(self.codes.astype(np.int64)).max(initial=0) > m:
            raise ValueError(f"constant int{self.bits} codes must have rank >= 2 and lie in [-{m}, {m}]; received "
                             f"shape {self.codes.shape}, max |code| {np.abs(self.codes.astype(np.int64)).max(initial=0)}")
        self.codes = self.codes.astype(np.int8)
        if self.scales.size not in (1, self.codes.shape[self.channel_axis]) or not np.all(self.scales > 0):
            raise ValueError(f"constant weights need 1 or {self.codes.shape[self.channel_axis]} positive scales; "
                             f"received {self.scales.size}")

    @property
    def shape(self):
        return tuple(self.codes.shape)

    @property
    def max_code(self):
        return 2 ** (self.bits - 1) - 1

    @property
    def per_channel(self):
        return self.scales.size > 1

    def sample(self, stream=None):
        return self.codes

    @classmethod
    def example(cls, shape, bits=8, per_channel=True, channel_axis=0, seed=0):
        """Random constant weights quantized to `bits` (per channel along `channel_axis` or per tensor)."""
        w = np.random.default_rng(seed).normal(0, 0.4, size=shape)
        return cls.quantize(w, bits, per_channel, channel_axis)

    def mean_codes(self):
        return self.codes

    def stored_tensors(self):
        if self.bits == 4:
            return [("filter", storage._pack_nibbles(self.codes))]
        return [("filter", self.codes)]

    @classmethod
    def from_stored(cls, arrays, shape, scales, bits, channel_axis=0):
        """Inverse of `stored_tensors` (`arrays`: {"filter": int8 codes or packed int4 nibbles})."""
        arr = np.asarray(arrays["filter"])
        n = int(np.prod(shape))
        codes = arr.reshape(shape) if bits == 8 else storage._unpack_nibbles(arr, n, True).reshape(shape)
        return cls(codes, scales, bits, channel_axis)

    @classmethod
    def quantize(cls, w, bits=8, per_channel=False, channel_axis=0):
        """Symmetric narrow-range quantization of float weights (TFLite's int8 / int4 filters)."""
        w = np.asarray(w, np.float64)
        m = 2 ** (bits - 1) - 1
        axes = tuple(a for a in range(w.ndim) if a != channel_axis % w.ndim)
        amax = np.abs(w).max(axis=axes) if per_channel else np.array([np.abs(w).max()])
        scales = np.float32(np.maximum(amax, 1e-12) / m)
        shape = [1] * w.ndim
        if per_channel:
            shape[channel_axis % w.ndim] = -1
        codes = np.clip(np.round(w / scales.astype(np.float64).reshape(shape)), -m, m)
        return cls(codes.astype(np.int8), scales, bits, channel_axis % w.ndim)
