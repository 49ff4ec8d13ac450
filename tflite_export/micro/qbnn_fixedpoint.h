/* TFLite's integer arithmetic (gemmlowp fixed point, double-rounding MultiplyByQuantizedMultiplier)
   and its int8 SOFTMAX reference kernel, ported to C99 so the runtime agrees with TFLite/TFLM
   to the bit. Names follow tensorflow/lite/kernels/internal/{common.h,reference/softmax.h}. */
#ifndef QBNN_FIXEDPOINT_H_
#define QBNN_FIXEDPOINT_H_
#include <stdint.h>

int32_t qbnn_srdhm(int32_t a, int32_t b);                 /* SaturatingRoundingDoublingHighMul */
int32_t qbnn_rounding_divide_by_pot(int32_t x, int exponent);
int32_t qbnn_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift);

/* reference_ops::Softmax, int8 in -> int8 out (scale 1/256, zero point -128). */
void qbnn_softmax_int8(const int8_t *input, int depth, int32_t input_multiplier, int32_t input_left_shift,
                       int32_t diff_min, int8_t *output);

#endif
