"""int8 -> int8 SOFTMAX exactly as TFLite's reference_ops::Softmax with TFLM's
CalculateSoftmaxParams (kScaledDiffIntegerBits = 5, kAccumulationIntegerBits = 12), vectorised over
rows; output scale 1/256, zero point -128 (SPEC.md section 7)."""

from __future__ import annotations

import math

import numpy as np

from tflite_export.intmath.fixedpoint import (
    INT32_MAX,
    quantize_multiplier,
    rounding_divide_by_pot,
    saturating_shift_left,
    srdhm,
)
from tflite_export.intmath.fixedpoint import _wrap32 as wrap32

SCALED_DIFF_INTEGER_BITS = 5
ACCUMULATION_INTEGER_BITS = 12


def softmax_params(input_scale, beta=1.0):
    """(input_multiplier, input_left_shift, diff_min) as PreprocessSoftmaxScaling / CalculateInputRadius."""
    real = min(float(beta) * float(np.float32(input_scale)) * 2.0 ** (31 - SCALED_DIFF_INTEGER_BITS), 2.0**31 - 1.0)
    multiplier, left_shift = quantize_multiplier(real)
    if left_shift < 0:
        raise ValueError(f"softmax input scale {input_scale} too small for int8 softmax (left shift {left_shift})")
    radius = ((1 << SCALED_DIFF_INTEGER_BITS) - 1) * 2.0 ** (31 - SCALED_DIFF_INTEGER_BITS) / 2.0**left_shift
    return multiplier, left_shift, -int(math.floor(radius))


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a):
    constant_term = 1895147668
    constant_1_over_3 = 715827883
    x = wrap32(a + (1 << 28))
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = rounding_divide_by_pot(x4, 2)
    poly = rounding_divide_by_pot(wrap32(srdhm(wrap32(x4_over_4 + x3), constant_1_over_3) + x2), 1)
    return wrap32(constant_term + srdhm(constant_term, wrap32(x + poly)))


_BARREL = [(-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535), (3, 720401), (4, 242)]


def exp_on_negative_values(a):
    """gemmlowp exp_on_negative_values for Q5.26 input (a <= 0), Q0.31 output."""
    frac = 31 - SCALED_DIFF_INTEGER_BITS
    one_quarter = 1 << (frac - 2)
    a = np.asarray(a, np.int64)
    a_mod = (a & (one_quarter - 1)) - one_quarter
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(
        saturating_shift_left(a_mod, SCALED_DIFF_INTEGER_BITS))
    remainder = wrap32(a_mod - a)
    for exponent, mult in _BARREL:
        if SCALED_DIFF_INTEGER_BITS > exponent:
            bit = (remainder & (1 << (frac + exponent))) != 0
            result = np.where(bit, srdhm(result, mult), result)
    return np.where(a == 0, INT32_MAX, result)


def _one_over_one_plus_x_for_x_in_0_1(a):
    s = np.asarray(a, np.int64) + INT32_MAX
    half_denominator = np.where(s >= 0, (s + 1) // 2, -((-(s - 1)) // 2))  # (s + sign) / 2, truncating
    x = wrap32(1515870810 + srdhm(half_denominator, -1010580540))
    for _ in range(3):
        hdx = srdhm(half_denominator, x)
        one_minus = wrap32((1 << 29) - hdx)
        x = wrap32(x + saturating_shift_left(srdhm(x, one_minus), 2))
    return saturating_shift_left(x, 1)


def softmax_int8(logits, input_scale, beta=1.0):
    """int8 logits [..., C] -> int8 probabilities (scale 1/256, zero point -128)."""
    q = np.asarray(logits, np.int64)
    multiplier, left_shift, diff_min = softmax_params(input_scale, beta)
    diff = q - q.max(axis=-1, keepdims=True)
    valid = diff >= diff_min
    rescaled = srdhm(wrap32(diff << left_shift), multiplier)
    exps = exp_on_negative_values(rescaled)
    total = np.sum(np.where(valid, rounding_divide_by_pot(exps, ACCUMULATION_INTEGER_BITS), 0), axis=-1, keepdims=True)
    # GetReciprocal
    headroom_plus_one = 32 - np.frexp(total.astype(np.float64))[1].astype(np.int64)  # count leading zeros
    num_bits_over_unit = ACCUMULATION_INTEGER_BITS - headroom_plus_one
    shifted_sum_minus_one = wrap32((total << headroom_plus_one) - (1 << 31))
    shifted_scale = _one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one)
    exponent = num_bits_over_unit + 31 - 8
    out = rounding_divide_by_pot(srdhm(shifted_scale, exps), exponent) - 128
    return np.where(valid, np.clip(out, -128, 127), -128).astype(np.int8)
