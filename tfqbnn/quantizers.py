"""Quantizers with straight-through-estimator gradients.

Two small callable objects, in the style of QKeras quantizers:

* `UniformQuantizer` -- symmetric, narrow-range grid ``k * delta`` with
  ``|k| <= 2**(bits-1) - 1`` and ``delta = clip / (2**(bits-1) - 1)``.  Used for
  the variational means (VPQ) and for sampled weights (SPQ).
* `LogQuantizer` -- for strictly positive values (the standard deviations):
  ``log2(x)`` is rounded on a uniform grid of ``2**bits`` levels spanning
  ``[log2(min_value), log2(max_value)]``.  Inside that range the relative error is
  at most ``2**(step/2) - 1``.

Calling a quantizer on a tensor returns the fake-quantized tensor (float) with an
STE gradient.  ``codes(x)`` returns the integer codes and ``dequantize(codes)``
maps them back; both work on NumPy arrays (returning NumPy) and on tensors
(returning tensors), so the exporter and the integer reference use exactly the
same rounding as training.  Rounding is round-half-to-even in both NumPy and
TensorFlow.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

MIN_BITS = 2
LOG_MIN_BITS = 1
MAX_BITS = 16


def check_bits(bits, name="bits", low=MIN_BITS):
    """Return ``bits`` as an int, or raise ValueError naming the received value."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)):
        raise ValueError(
            f"`{name}` must be an integer in [{low}, {MAX_BITS}]; received {name}={bits!r}"
        )
    if not low <= int(bits) <= MAX_BITS:
        raise ValueError(
            f"`{name}` must be in [{low}, {MAX_BITS}]; received {name}={bits}"
        )
    return int(bits)


def _is_numpy(x):
    return isinstance(x, (np.ndarray, np.generic, float, int, list, tuple))


class Quantizer:
    """Base class: ``__call__`` fake-quantizes with an STE gradient.

    Subclasses define the forward rounding, ``quantize(x)``, and the STE as a
    multiplier of the incoming gradient, ``ste_grad(x, y)`` with ``y =
    quantize(x)``.  `DenseVariational` composes these two directly in its fused
    weight-sampling gradient, so the STE is written once.
    """

    bits: int

    def __call__(self, x):
        x = tf.convert_to_tensor(x)

        @tf.custom_gradient
        def fn(x):
            y = self.quantize(x)
            return y, lambda dy: dy * self.ste_grad(x, y)

        return fn(x)

    def quantize(self, x):
        """Fake-quantized ``x`` (float tensor, no gradient defined)."""
        raise NotImplementedError

    def ste_grad(self, x, y):
        """d(output)/d(input) used by the straight-through estimator, elementwise."""
        raise NotImplementedError

    def codes(self, x):
        raise NotImplementedError

    def dequantize(self, codes):
        raise NotImplementedError

    @property
    def num_levels(self):
        raise NotImplementedError

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash((type(self).__name__, tuple(sorted(self.get_config().items()))))


class UniformQuantizer(Quantizer):
    """Symmetric narrow-range uniform quantizer.

    Args:
        bits: int in [2, 16]. The grid has ``2**bits - 1`` levels
            ``k * delta``, ``k = -(2**(bits-1) - 1) ... 2**(bits-1) - 1``.
        clip: positive float; inputs are clipped to ``[-clip, clip]`` and
            ``delta = clip / (2**(bits-1) - 1)``.

    The STE passes the gradient unchanged inside ``[-clip, clip]`` and blocks it
    outside (the clipped region has zero true derivative).
    """

    def __init__(self, bits, clip=1.0):
        self.bits = check_bits(bits)
        if not (isinstance(clip, (int, float, np.floating)) and math.isfinite(clip) and clip > 0):
            raise ValueError(f"`clip` must be a positive finite number; received clip={clip!r}")
        self.clip = float(clip)

    @property
    def max_code(self):
        return 2 ** (self.bits - 1) - 1

    @property
    def delta(self):
        return self.clip / self.max_code

    @property
    def num_levels(self):
        return 2 * self.max_code + 1

    def codes(self, x):
        if _is_numpy(x):
            x = np.asarray(x, dtype=np.float64)
            return np.clip(np.round(x / self.delta), -self.max_code, self.max_code).astype(np.int32)
        x = tf.convert_to_tensor(x)
        q = tf.clip_by_value(tf.round(x / tf.cast(self.delta, x.dtype)), -self.max_code, self.max_code)
        return tf.cast(q, tf.int32)

    def dequantize(self, codes):
        if _is_numpy(codes):
            return np.asarray(codes, dtype=np.float64) * self.delta
        codes = tf.convert_to_tensor(codes)
        return tf.cast(codes, tf.float32) * self.delta

    def quantize(self, x):
        return tf.cast(self.dequantize(self.codes(x)), x.dtype)

    def ste_grad(self, x, y):
        # identity inside the range, zero where the input was clipped
        return tf.cast(tf.abs(x) <= self.clip, x.dtype)

    def get_config(self):
        return {"bits": self.bits, "clip": self.clip}


class LogQuantizer(Quantizer):
    """Logarithmic quantizer for strictly positive values (standard deviations).

    ``code = clip(round((log2(x) - log2(min_value)) / step), 0, 2**bits - 1)`` with
    ``step = (log2(max_value) - log2(min_value)) / (2**bits - 1)``, and
    ``dequantize(code) = 2**(log2(min_value) + code * step)``.  The output is
    never zero, so a quantized Gaussian stays a Gaussian.

    Args:
        bits: int in [1, 16]; ``2**bits`` levels.
        min_value: smallest level (default ``2**-10``, about 1e-3: far below the
            4-bit weight step 1/7, where a smaller sigma has no effect on a
            sampled, re-quantized weight).
        max_value: largest level (default 1.0, the width of the weight range).

    Inside ``[min_value, max_value]`` the relative error is at most
    ``2**(step/2) - 1`` (``max_relative_error``).  The STE is the identity in
    log space: ``d q / d x = q / x``, everywhere (also outside the range, so a
    standard deviation below ``min_value`` can still grow back).
    """

    def __init__(self, bits, min_value=2.0**-10, max_value=1.0):
        # 1 bit is a valid log grid (two levels, min and max); the symmetric uniform grid needs 2
        self.bits = check_bits(bits, low=LOG_MIN_BITS)
        for name, v in (("min_value", min_value), ("max_value", max_value)):
            if not (isinstance(v, (int, float, np.floating)) and math.isfinite(v) and v > 0):
                raise ValueError(f"`{name}` must be a positive finite number; received {name}={v!r}")
        if not min_value < max_value:
            raise ValueError(
                f"`min_value` must be < `max_value`; received min_value={min_value}, max_value={max_value}"
            )
        self.min_value = float(min_value)
        self.max_value = float(max_value)

    @property
    def num_levels(self):
        return 2**self.bits

    @property
    def log2_min(self):
        return math.log2(self.min_value)

    @property
    def step(self):
        """Grid spacing in log2 units."""
        return (math.log2(self.max_value) - self.log2_min) / (self.num_levels - 1)

    @property
    def max_relative_error(self):
        return 2.0 ** (self.step / 2) - 1.0

    def codes(self, x):
        top = self.num_levels - 1
        if _is_numpy(x):
            x = np.asarray(x, dtype=np.float64)
            if np.any(~(x > 0)):
                raise ValueError("LogQuantizer.codes needs strictly positive inputs")
            k = np.round((np.log2(x) - self.log2_min) / self.step)
            return np.clip(k, 0, top).astype(np.int32)
        x = tf.convert_to_tensor(x)
        k = tf.round((tf.math.log(x) / math.log(2.0) - self.log2_min) / self.step)
        return tf.cast(tf.clip_by_value(k, 0, top), tf.int32)

    def dequantize(self, codes):
        if _is_numpy(codes):
            return np.exp2(self.log2_min + np.asarray(codes, dtype=np.float64) * self.step)
        c = tf.cast(tf.convert_to_tensor(codes), tf.float32)
        return tf.exp((self.log2_min + c * self.step) * math.log(2.0))

    def levels(self):
        """All representable values, ascending (float64 NumPy)."""
        return self.dequantize(np.arange(self.num_levels))

    def quantize(self, x):
        # elementwise arithmetic (no table gather), so XLA fuses it
        return tf.cast(self.dequantize(self.codes(x)), x.dtype)

    def ste_grad(self, x, y):
        # identity in log space: d log y = d log x  =>  dy/dx = y / x
        return y / x

    def get_config(self):
        return {"bits": self.bits, "min_value": self.min_value, "max_value": self.max_value}


_QUANTIZERS = {"UniformQuantizer": UniformQuantizer, "LogQuantizer": LogQuantizer}


def serialize(quantizer):
    if quantizer is None:
        return None
    return {"class_name": type(quantizer).__name__, "config": quantizer.get_config()}


def deserialize(config):
    if config is None:
        return None
    try:
        cls = _QUANTIZERS[config["class_name"]]
    except KeyError:
        raise ValueError(
            f"Unknown quantizer class {config.get('class_name')!r}; expected one of {sorted(_QUANTIZERS)}"
        ) from None
    return cls.from_config(config["config"])
