/* DEPTHWISE_CONV_2D (TFLite reference_integer_ops::DepthwiseConvPerChannel), NHWC input, filter 1HWO with
   O = C * depth_multiplier, no dilation. A 1HWO filter's stream bytes (SPEC 3, row-major) interleave the output
   channels, so the whole filter (H * W * O codes, the op's only row) is sampled into scratch once per pass. The
   input's int16 operands are zero-padded (qbnn__pad16): every window is whole, no bounds per tap. */
#include "qbnn_op_depthwise_conv2d.h"

#include "qbnn_ops.h"

int qbnn_op_depthwise_conv2d_prepare(const qbnn_op *op, int kernel, int is_last, qbnn_op_needs *needs) {
  const qbnn_conv_params *P = (const qbnn_conv_params *)op->params;
  if (!P) return QBNN_ERR_NULL;
  if (op->in.c == 0 || op->out.c % op->in.c != 0) return QBNN_RT_ERR_CHAIN;
  int err = qbnn__check_window(op->in, op->out, P->filter_h, P->filter_w, P->stride_h, P->stride_w, P->pad_top,
                               P->pad_left);
  if (err != QBNN_OK) return err;
  const uint64_t x_elems =
      QBNN_SCRATCH(QBNN_DEPTHWISE_CONV_2D_X_ELEMS, op, P->filter_h, P->filter_w, P->stride_h, P->stride_w);
  const uint64_t filter_elems =
      QBNN_SCRATCH(QBNN_DEPTHWISE_CONV_2D_FILTER_ELEMS, op, P->filter_h, P->filter_w, P->stride_h, P->stride_w);
  if (!qbnn__fits_arena16(x_elems) || !qbnn__fits_arena16(filter_elems)) return QBNN_RT_ERR_LIMITS;
  /* the filter is the op's one row of H*W*O codes; requantisation constants are per output channel */
  if (P->w.moments) return QBNN_RT_ERR_MODE;
  const uint32_t dims[4] = {1, P->filter_h, P->filter_w, op->out.c};
  err = qbnn__check_weighted(&P->w, QBNN_FILTER_1HWO, dims, kernel, is_last, needs);
  if (err != QBNN_OK) return err;
  for (uint32_t o = 0; o < op->out.c; ++o) {
    if (P->w.multipliers && (P->w.multipliers[o] < 0 || P->w.shifts[o] < -31 || P->w.shifts[o] > 30))
      return QBNN_RT_ERR_RANGE;
    if (P->w.bias && (P->w.bias[o] <= -(1 << 30) || P->w.bias[o] >= (1 << 30))) return QBNN_RT_ERR_RANGE;
  }
  needs->x_elems = x_elems;
  needs->filter_elems = filter_elems;
  return QBNN_OK;
}

void qbnn_op_depthwise_conv2d_eval(const qbnn_op *op, const int8_t *in, int8_t *out, qbnn_op_ctx *ctx) {
  const qbnn_conv_params *P = (const qbnn_conv_params *)op->params;
  const qbnn_rt_layer *L = &P->w;
  const int32_t C = op->in.c, OH = op->out.h, OW = op->out.w, O = op->out.c;
  const int32_t FH = P->filter_h, FW = P->filter_w, DM = O / C;
  const int32_t row = ((OW - 1) * P->stride_w + FW) * C;
  int16_t *x = ctx->x, *f = ctx->rt->filter;
  if (!ctx->x_ready) qbnn__pad16(op, P, in, 0, x);
  ctx->x_ready = 1;
  qbnn__filter_row(L, 0, ctx->rt->kernel, ctx->mean, L->core.mu ? &ctx->rt->streams[L->core.layer_index] : 0, f);
  int8_t *y = out;
  for (int32_t oy = 0; oy < OH; ++oy)
    for (int32_t ox = 0; ox < OW; ++ox, y += O) {
      const int16_t *xw = x + oy * P->stride_h * row + ox * P->stride_w * C;
      for (int32_t o = 0; o < O; ++o) { /* input channel o / DM */
        const int16_t *xc = xw + o / DM, *fo = f + o;
        int32_t acc = 0;
        for (int32_t fy = 0; fy < FH; ++fy, xc += row)
          for (int32_t fx = 0; fx < FW; ++fx, fo += O) acc += (int32_t)*fo * xc[fx * C];
        y[o] = qbnn__requantize(L, acc, (uint32_t)o);
      }
    }
}
