/* RESHAPE / flatten: NHWC is row-major, so a flatten keeps the bytes; only the element counts must agree. */
#include "qbnn_ops.h"

int qbnn_op_reshape_prepare(const qbnn_op *op, int kernel, int is_last, qbnn_op_needs *needs) {
  (void)kernel, (void)is_last;
  needs->x_elems = needs->filter_elems = 0; /* no scratch: no kernel header (its IR op's c_scratch is False) */
  return qbnn__elems64(op->in) == qbnn__elems64(op->out) ? QBNN_OK : QBNN_RT_ERR_CHAIN;
}

void qbnn_op_reshape_eval(const qbnn_op *op, const int8_t *in, int8_t *out, qbnn_op_ctx *ctx) {
  (void)ctx;
  memmove(out, in, qbnn__elems(op->in));
}
