/* TFLite's integer arithmetic (gemmlowp fixed point, double-rounding MultiplyByQuantizedMultiplier)
   and its int8 SOFTMAX reference kernel, ported to C99 so the runtime agrees with TFLite/TFLM
   to the bit. Names follow tensorflow/lite/kernels/internal/{common.h,reference/softmax.h}. */
#ifndef QBNN_FIXEDPOINT_H_
#define QBNN_FIXEDPOINT_H_
#include <stdint.h>

int32_t qbnn_srdhm(int32_t a, int32_t b);                 /* SaturatingRoundingDoublingHighMul */
int32_t qbnn_rounding_divide_by_pot(int32_t x, int exponent);
int32_t qbnn_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift);

/* Inline bodies of the three above (the kernels requantise every output: no call per output). */
/* gemmlowp's (ab + (ab >= 0 ? 2^30 : 1 - 2^30)) / 2^31 with C's truncating division is (ab + 2^30) >> 31
   (arithmetic shift): for ab < 0 truncation adds 2^31 - 1 before the floor shift. Without the saturating case
   a == b == INT32_MIN (callers whose b >= 0 skip it). */
static inline int32_t qbnn__srdhm_nosat(int32_t a, int32_t b) {
  return (int32_t)(((int64_t)a * (int64_t)b + (1 << 30)) >> 31);
}

static inline int32_t qbnn__srdhm(int32_t a, int32_t b) {
  if (a == b && a == INT32_MIN) return INT32_MAX;
  return qbnn__srdhm_nosat(a, b);
}

static inline int32_t qbnn__rounding_divide_by_pot(int32_t x, int exponent) {
  const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

static inline int32_t qbnn__multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift) {
  const int left_shift = shift > 0 ? shift : 0;
  const int right_shift = shift > 0 ? 0 : -shift;
  return qbnn__rounding_divide_by_pot(qbnn__srdhm((int32_t)((uint32_t)x << left_shift), multiplier), right_shift);
}

/* reference_ops::Softmax, int8 in -> int8 out (scale 1/256, zero point -128). */
void qbnn_softmax_int8(const int8_t *input, int depth, int32_t input_multiplier, int32_t input_left_shift,
                       int32_t diff_min, int8_t *output);

#endif
