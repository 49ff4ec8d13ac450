#include "qbnn_fixedpoint.h"

int32_t qbnn_srdhm(int32_t a, int32_t b) { return qbnn__srdhm(a, b); }

int32_t qbnn_rounding_divide_by_pot(int32_t x, int exponent) { return qbnn__rounding_divide_by_pot(x, exponent); }

int32_t qbnn_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift) {
  return qbnn__multiply_by_quantized_multiplier(x, multiplier, shift);
}

/* gemmlowp SaturatingRoundingMultiplyByPOT for a positive exponent. */
static int32_t sat_shift_left(int32_t x, int exponent) {
  const int32_t threshold = (int32_t)((1u << (31 - exponent)) - 1u);
  if (x > threshold) return INT32_MAX;
  if (x < -threshold) return INT32_MIN;
  return (int32_t)((uint32_t)x << exponent);
}

/* exp(a) for a in [-1/4, 0), Q0.31 in and out. */
static int32_t exp_on_interval_between_negative_one_quarter_and_0_excl(int32_t a) {
  const int32_t constant_term = 1895147668;
  const int32_t constant_1_over_3 = 715827883;
  const int32_t x = (int32_t)((uint32_t)a + (1u << 28));
  const int32_t x2 = qbnn_srdhm(x, x);
  const int32_t x3 = qbnn_srdhm(x2, x);
  const int32_t x4 = qbnn_srdhm(x2, x2);
  const int32_t x4_over_4 = qbnn_rounding_divide_by_pot(x4, 2);
  const int32_t poly = qbnn_rounding_divide_by_pot(
      (int32_t)((uint32_t)qbnn_srdhm((int32_t)((uint32_t)x4_over_4 + (uint32_t)x3), constant_1_over_3) + (uint32_t)x2), 1);
  return (int32_t)((uint32_t)constant_term + (uint32_t)qbnn_srdhm(constant_term, (int32_t)((uint32_t)x + (uint32_t)poly)));
}

/* exp(a) for a <= 0: a in Q5.26, result in Q0.31. */
static int32_t exp_on_negative_values_q5(int32_t a) {
  enum { kIntegerBits = 5, kFractionalBits = 26 };
  const int32_t one_quarter = 1 << (kFractionalBits - 2);
  const int32_t mask = one_quarter - 1;
  const int32_t a_mod_quarter_minus_one_quarter = (a & mask) - one_quarter;
  int32_t result = exp_on_interval_between_negative_one_quarter_and_0_excl(
      sat_shift_left(a_mod_quarter_minus_one_quarter, kIntegerBits));
  const int32_t remainder = (int32_t)((uint32_t)a_mod_quarter_minus_one_quarter - (uint32_t)a);
  static const int32_t multipliers[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
  for (int e = -2; e <= 4; ++e) {
    if (kIntegerBits > e && (remainder & (1 << (kFractionalBits + e)))) result = qbnn_srdhm(result, multipliers[e + 2]);
  }
  return a == 0 ? INT32_MAX : result;
}

/* gemmlowp one_over_one_plus_x_for_x_in_0_1: Q0.31 in and out. */
static int32_t one_over_one_plus_x_for_x_in_0_1(int32_t a) {
  const int64_t sum = (int64_t)a + INT32_MAX;
  const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
  const int32_t constant_48_over_17 = 1515870810;
  const int32_t constant_neg_32_over_17 = -1010580540;
  const int32_t f2_one = 1 << 29;
  int32_t x = (int32_t)((uint32_t)constant_48_over_17 + (uint32_t)qbnn_srdhm(half_denominator, constant_neg_32_over_17));
  for (int i = 0; i < 3; ++i) {
    const int32_t half_denominator_times_x = qbnn_srdhm(half_denominator, x);
    const int32_t one_minus = (int32_t)((uint32_t)f2_one - (uint32_t)half_denominator_times_x);
    x = (int32_t)((uint32_t)x + (uint32_t)sat_shift_left(qbnn_srdhm(x, one_minus), 2));
  }
  return sat_shift_left(x, 1);
}

static int count_leading_zeros(uint32_t x) {
  int n = 0;
  if (x == 0) return 32;
  while (!(x & 0x80000000u)) {
    x <<= 1;
    ++n;
  }
  return n;
}

void qbnn_softmax_int8(const int8_t *input, int depth, int32_t input_multiplier, int32_t input_left_shift,
                       int32_t diff_min, int8_t *output) {
  enum { kAccumulationIntegerBits = 12 };
  int32_t max_in_row = -128;
  for (int c = 0; c < depth; ++c)
    if (input[c] > max_in_row) max_in_row = input[c];

  int32_t sum_of_exps = 0;
  for (int c = 0; c < depth; ++c) {
    const int32_t diff = (int32_t)input[c] - max_in_row;
    if (diff >= diff_min) {
      const int32_t rescaled = qbnn_srdhm((int32_t)((uint32_t)diff << input_left_shift), input_multiplier);
      sum_of_exps += qbnn_rounding_divide_by_pot(exp_on_negative_values_q5(rescaled), kAccumulationIntegerBits);
    }
  }
  /* GetReciprocal */
  const int headroom_plus_one = count_leading_zeros((uint32_t)sum_of_exps);
  const int num_bits_over_unit = kAccumulationIntegerBits - headroom_plus_one;
  const int32_t shifted_sum_minus_one =
      (int32_t)(((uint32_t)sum_of_exps << headroom_plus_one) - (1u << 31));
  const int32_t shifted_scale = one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one);
  const int exponent = num_bits_over_unit + 31 - 8;

  for (int c = 0; c < depth; ++c) {
    const int32_t diff = (int32_t)input[c] - max_in_row;
    int32_t out = -128;
    if (diff >= diff_min) {
      const int32_t rescaled = qbnn_srdhm((int32_t)((uint32_t)diff << input_left_shift), input_multiplier);
      const int32_t exp_in_0 = exp_on_negative_values_q5(rescaled);
      out = qbnn_rounding_divide_by_pot(qbnn_srdhm(shifted_scale, exp_in_0), exponent) - 128;
      if (out < -128) out = -128;
      if (out > 127) out = 127;
    }
    output[c] = (int8_t)out;
  }
}
