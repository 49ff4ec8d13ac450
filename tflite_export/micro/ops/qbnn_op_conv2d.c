/* CONV_2D (TFLite reference_integer_ops::ConvPerChannel), NHWC input, filter OHWI, no dilation: one output
   channel at a time, its filter (sampled: SPEC 3's stream bytes in OHWI order, so one channel's filter is one
   contiguous run of the stream; or constant) in int16 scratch, then every output position with SMLAD pairs
   over the contiguous (filter x, input channel) runs of each filter row. Scratch: the input's int16 operands
   and one channel's filter, so RAM is bounded by the largest filter, not the layer. */
#include "qbnn_ops.h"

int qbnn_op_conv2d_prepare(const qbnn_op *op, int kernel, int is_last, qbnn_op_needs *needs) {
  const qbnn_conv_params *P = (const qbnn_conv_params *)op->params;
  if (!P) return QBNN_ERR_NULL;
  const uint32_t k = (uint32_t)P->filter_h * P->filter_w * op->in.c;
  int err = qbnn__check_window(op->in, op->out, P->filter_h, P->filter_w, P->stride_h, P->stride_w, P->pad_top,
                               P->pad_left);
  if (err != QBNN_OK) return err;
  err = qbnn__check_weighted(&P->w, op->out.c, k, kernel, is_last);
  if (err != QBNN_OK) return err;
  if (P->w.moments) return QBNN_RT_ERR_MODE; /* HYBRID / PFP are defined for dense layers only */
  needs->x_elems = (qbnn__elems(op->in) + 3u) & ~3u;
  needs->filter_elems = k;
  return QBNN_OK;
}

void qbnn_op_conv2d_eval(const qbnn_op *op, const int8_t *in, int8_t *out, qbnn_op_ctx *ctx) {
  const qbnn_conv_params *P = (const qbnn_conv_params *)op->params;
  const qbnn_rt_layer *L = &P->w;
  const int32_t H = op->in.h, W = op->in.w, C = op->in.c, OH = op->out.h, OW = op->out.w, O = op->out.c;
  const int32_t FH = P->filter_h, FW = P->filter_w;
  int16_t *x = ctx->x, *f = ctx->rt->filter;
  if (!ctx->x_ready) qbnn__offset16(in, (uint32_t)(H * W * C), L->in_zero_point, x);
  ctx->x_ready = 1;
  qbnn_stream *s = L->core.mu ? &ctx->rt->streams[L->core.layer_index] : 0;
  for (int32_t o = 0; o < O; ++o) {
    qbnn__filter_row(L, (uint32_t)o, ctx->rt->kernel, ctx->mean, s, f);
    int8_t *y = out + o;
    for (int32_t oy = 0; oy < OH; ++oy) {
      const int32_t iy0 = oy * P->stride_h - P->pad_top;
      const int32_t fy0 = iy0 < 0 ? -iy0 : 0, fy1 = H - iy0 < FH ? H - iy0 : FH;
      for (int32_t ox = 0; ox < OW; ++ox, y += O) {
        const int32_t ix0 = ox * P->stride_w - P->pad_left;
        const int32_t fx0 = ix0 < 0 ? -ix0 : 0, fx1 = W - ix0 < FW ? W - ix0 : FW;
        const uint32_t run = (uint32_t)((fx1 - fx0) * C);
        int32_t acc = 0;
        for (int32_t fy = fy0; fy < fy1; ++fy)
          acc = qbnn__dot16(f + (fy * FW + fx0) * C, x + ((iy0 + fy) * W + ix0 + fx0) * C, run, acc);
        *y = qbnn__requantize(L, acc, (uint32_t)o);
      }
    }
  }
}
