/* GLOBAL_AVERAGE_POOL_2D: each channel's average over the whole H x W image, rounded half away from zero with C's
   truncating division (AVERAGE_POOL_2D's rule, count = H * W); output quantization = input's; no parameters. */
#include "qbnn_ops.h"

int qbnn_op_global_average_pool2d_prepare(const qbnn_op *op, int kernel, int is_last, qbnn_op_needs *needs) {
  (void)kernel, (void)is_last;
  needs->x_elems = needs->filter_elems = 0; /* no scratch: no kernel header (its IR op's c_scratch is False) */
  /* H * W * 127 must fit the int32 sums: qbnn_init bounds every tensor by QBNN_MAX_TENSOR */
  if (op->out.h != 1 || op->out.w != 1 || op->out.c != op->in.c) return QBNN_RT_ERR_CHAIN;
  return (uint64_t)op->in.h * op->in.w <= (uint64_t)INT32_MAX / 128u ? QBNN_OK : QBNN_RT_ERR_LIMITS;
}

void qbnn_op_global_average_pool2d_eval(const qbnn_op *op, const int8_t *in, int8_t *out, qbnn_op_ctx *ctx) {
  (void)ctx;
  const int32_t C = op->in.c, count = (int32_t)op->in.h * op->in.w;
  for (int32_t c = 0; c < C; ++c) {
    int32_t s = 0;
    for (int32_t k = 0; k < count; ++k) s += in[k * C + c];
    out[c] = (int8_t)(s > 0 ? (s + count / 2) / count : (s - count / 2) / count);
  }
}
