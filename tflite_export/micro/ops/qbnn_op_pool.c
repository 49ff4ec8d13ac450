/* MAX_POOL_2D and AVERAGE_POOL_2D (TFLite reference_integer_ops pooling, int8; output quantization = input's):
   over the in-image taps only; average rounds half away from zero ((s +- count/2) / count, C division);
   then the fused activation clamp. Max pooling with 4+ channels takes 4 at a time (SSUB8 + SEL on DSP targets). */
#include "qbnn_op_pool.h"

#include "qbnn_ops.h"

static int prepare(const qbnn_op *op) {
  const qbnn_pool_params *P = (const qbnn_pool_params *)op->params;
  if (!P) return QBNN_ERR_NULL;
  if (op->in.c != op->out.c) return QBNN_RT_ERR_CHAIN;
  if (!qbnn__in_int8(P->act_min) || !qbnn__in_int8(P->act_max) || P->act_min > P->act_max) return QBNN_RT_ERR_RANGE;
  return qbnn__check_window(op->in, op->out, P->filter_h, P->filter_w, P->stride_h, P->stride_w, P->pad_top,
                            P->pad_left);
}

int qbnn_op_max_pool2d_prepare(const qbnn_op *op, int kernel, int is_last, qbnn_op_needs *needs) {
  (void)kernel, (void)is_last;
  needs->x_elems = QBNN_SCRATCH(QBNN_MAX_POOL_2D_X_ELEMS, op, 0, 0, 0, 0);
  needs->filter_elems = QBNN_SCRATCH(QBNN_MAX_POOL_2D_FILTER_ELEMS, op, 0, 0, 0, 0);
  return prepare(op);
}

int qbnn_op_average_pool2d_prepare(const qbnn_op *op, int kernel, int is_last, qbnn_op_needs *needs) {
  (void)kernel, (void)is_last;
  needs->x_elems = QBNN_SCRATCH(QBNN_AVERAGE_POOL_2D_X_ELEMS, op, 0, 0, 0, 0);
  needs->filter_elems = QBNN_SCRATCH(QBNN_AVERAGE_POOL_2D_FILTER_ELEMS, op, 0, 0, 0, 0);
  return prepare(op);
}

static void pool(const qbnn_op *op, const int8_t *in, int8_t *out, int average) {
  const qbnn_pool_params *P = (const qbnn_pool_params *)op->params;
  const int32_t H = op->in.h, W = op->in.w, C = op->in.c, OH = op->out.h, OW = op->out.w;
  for (int32_t oy = 0; oy < OH; ++oy) {
    const int32_t iy0 = oy * P->stride_h - P->pad_top;
    const int32_t fy0 = iy0 < 0 ? -iy0 : 0, fy1 = H - iy0 < P->filter_h ? H - iy0 : P->filter_h;
    for (int32_t ox = 0; ox < OW; ++ox) {
      const int32_t ix0 = ox * P->stride_w - P->pad_left;
      const int32_t fx0 = ix0 < 0 ? -ix0 : 0, fx1 = W - ix0 < P->filter_w ? W - ix0 : P->filter_w;
      int8_t *y = out + (oy * OW + ox) * C;
      if (!average && C >= 4) { /* 4 channels per word; the last word overlaps the previous (max is idempotent) */
        const uint32_t lo = 0x01010101u * (uint8_t)P->act_min, hi = 0x01010101u * (uint8_t)P->act_max;
        for (int32_t c0 = 0; c0 < C; c0 += 4) {
          const int32_t c = c0 + 4 <= C ? c0 : C - 4;
          uint32_t v = lo; /* clamp(max of taps) = min(max(act_min, taps...), act_max) */
          for (int32_t fy = fy0; fy < fy1; ++fy)
            for (int32_t fx = fx0; fx < fx1; ++fx) {
              uint32_t q;
              memcpy(&q, in + ((iy0 + fy) * W + ix0 + fx) * C + c, 4);
              v = max_s8x4(v, q);
            }
          v = min_s8x4(v, hi);
          memcpy(y + c, &v, 4);
        }
        continue;
      }
      const int32_t count = (fy1 - fy0) * (fx1 - fx0);
      for (int32_t c = 0; c < C; ++c) {
        int32_t v = average ? 0 : -128;
        for (int32_t fy = fy0; fy < fy1; ++fy)
          for (int32_t fx = fx0; fx < fx1; ++fx) {
            const int32_t q = in[((iy0 + fy) * W + ix0 + fx) * C + c];
            if (average) v += q;
            else if (q > v) v = q;
          }
        if (average && count > 0) v = v > 0 ? (v + count / 2) / count : (v - count / 2) / count;
        if (v < P->act_min) v = P->act_min;
        if (v > P->act_max) v = P->act_max;
        y[c] = (int8_t)v;
      }
    }
  }
}

void qbnn_op_max_pool2d_eval(const qbnn_op *op, const int8_t *in, int8_t *out, qbnn_op_ctx *ctx) {
  (void)ctx;
  pool(op, in, out, 0);
}

void qbnn_op_average_pool2d_eval(const qbnn_op *op, const int8_t *in, int8_t *out, qbnn_op_ctx *ctx) {
  (void)ctx;
  pool(op, in, out, 1);
}
