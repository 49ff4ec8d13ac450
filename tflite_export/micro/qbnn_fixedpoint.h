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
#if defined(__ARM_ARCH_6M__)
  /* ARMv6-M has no 32 x 32 -> 64 multiply (the int64 product is a library call): from the 16-bit halves,
     ab = hi 2^32 + (m1 + m2) 2^16 + lo, and (ab + 2^30) >> 31 = 2 hi + (m1 >> 15) + (m2 >> 15) +
     ((m1 mod 2^15) + (m2 mod 2^15) + (lo >> 16) + 2^14) >> 15, every partial product within 32 bits */
  const uint32_t al = (uint32_t)a & 0xFFFFu, bl = (uint32_t)b & 0xFFFFu;
  const int32_t ah = a >> 16, bh = b >> 16;
  const int32_t m1 = ah * (int32_t)bl, m2 = (int32_t)al * bh;
  const uint32_t r = ((uint32_t)m1 & 0x7FFFu) + ((uint32_t)m2 & 0x7FFFu) + ((al * bl) >> 16) + 0x4000u;
  return (int32_t)(2u * (uint32_t)(ah * bh) + (uint32_t)(m1 >> 15) + (uint32_t)(m2 >> 15) + (r >> 15));
#else
  return (int32_t)(((int64_t)a * (int64_t)b + (1 << 30)) >> 31);
#endif
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
