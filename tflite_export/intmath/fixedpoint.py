"""TFLite's integer requantization math (quantization_util.cc, common.h, gemmlowp fixedpoint.h),
vectorised over numpy int64 arrays; every function returns the exact int32 results of the C++ code
(double-rounding build, TFLITE_SINGLE_ROUNDING off, as in TFLM)."""

from __future__ import annotations

import math

import numpy as np

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def round_half_away(x):
    """std::round / TfLiteRound on float64."""
    x = np.asarray(x, np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def quantize_multiplier(real_multiplier):
    """QuantizeMultiplier(double) -> (int32 multiplier, int shift)."""
    m = float(real_multiplier)
    if m == 0.0:
        return 0, 0
    q, shift = math.frexp(m)
    q_fixed = int(round_half_away(q * 2**31))
    if q_fixed == 2**31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


def fc_multiplier(input_scale, filter_scale, output_scale):
    """GetQuantizedConvolutionMultipler without bias: the scale product is formed in float32."""
    product = np.float32(np.float32(input_scale) * np.float32(filter_scale))
    return quantize_multiplier(float(product) / float(np.float32(output_scale)))


def _trunc_div(a, b):
    """C integer division (truncation toward zero) for int64 arrays, b > 0."""
    q = np.abs(a) // b
    return np.where(a < 0, -q, q)


def srdhm(a, b):
    """gemmlowp SaturatingRoundingDoublingHighMul."""
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    res = _trunc_div(ab + nudge, 1 << 31)
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, res).astype(np.int64)


def rounding_divide_by_pot(x, exponent):
    """gemmlowp RoundingDivideByPOT (exponent a scalar or an array)."""
    x = np.asarray(x, np.int64)
    exponent = np.asarray(exponent, np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def saturating_shift_left(x, exponent):
    """gemmlowp SaturatingRoundingMultiplyByPOT for a positive exponent."""
    x = np.asarray(x, np.int64)
    threshold = (1 << (31 - exponent)) - 1
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, _wrap32(x << exponent)))


def _wrap32(x):
    x = np.asarray(x, np.int64)
    return ((x + 2**31) % 2**32) - 2**31


def multiply_by_quantized_multiplier(x, multiplier, shift, rounding="double"):
    """MultiplyByQuantizedMultiplier(int32 x, ...): "double" rounding (TFLM, TFLITE_SINGLE_ROUNDING=0)
    or "single" (LiteRT 2.3 wheels are built with TFLITE_SINGLE_ROUNDING=1)."""
    if rounding == "single":
        total = 31 - shift
        return (np.asarray(x, np.int64) * int(multiplier) + (1 << (total - 1))) >> total
    if rounding != "double":
        raise ValueError(f"`rounding` must be 'double' or 'single'; received rounding={rounding!r}")
    left = max(shift, 0)
    right = max(-shift, 0)
    return rounding_divide_by_pot(srdhm(_wrap32(np.asarray(x, np.int64) << left), multiplier), right)


def requantize(acc, multiplier, shift, zero_point, act_min=-128, act_max=127, rounding="double"):
    """FULLY_CONNECTED output stage: clamp(MBQM(acc) + zp) as int8."""
    out = multiply_by_quantized_multiplier(acc, multiplier, shift, rounding) + zero_point
    return np.clip(out, act_min, act_max).astype(np.int8)


def quantize_to_int8(values, scale, zero_point):
    """TFLite QUANTIZE float -> int8 (round half away from zero of value / float32 scale)."""
    v = np.asarray(values, np.float32) / np.float32(scale)
    return np.clip(round_half_away(v.astype(np.float64)) + zero_point, -128, 127).astype(np.int8)


def per_channel_multipliers(input_scale, filter_scales, output_scale):
    """PopulateConvolutionQuantizationParams (CONV_2D, DEPTHWISE_CONV_2D, per-channel FULLY_CONNECTED): for
    every channel `double(s_in) * double(s_w[c]) / double(s_out)` (a float64 product, unlike `fc_multiplier`);
    returns int64 arrays (multipliers, shifts)."""
    s_in, s_out = float(np.float32(input_scale)), float(np.float32(output_scale))
    pairs = [quantize_multiplier(s_in * float(s) / s_out) for s in np.asarray(filter_scales, np.float32).reshape(-1)]
    return np.array([m for m, _ in pairs], np.int64), np.array([s for _, s in pairs], np.int64)


def requantize_per_channel(acc, multipliers, shifts, zero_point, act_min=-128, act_max=127, rounding="double"):
    """`requantize` with one (multiplier, shift) per channel of the last axis of `acc`."""
    acc = np.asarray(acc, np.int64)
    out = np.empty(acc.shape, np.int64)
    for c, (m, s) in enumerate(zip(np.asarray(multipliers).reshape(-1), np.asarray(shifts).reshape(-1))):
        out[..., c] = multiply_by_quantized_multiplier(acc[..., c], int(m), int(s), rounding)
    return np.clip(out + zero_point, act_min, act_max).astype(np.int8)
