/* CONV_2D (TFLite reference_integer_ops::ConvPerChannel), NHWC input, filter OHWI, no dilation: one output
   channel at a time, its filter (sampled: SPEC 3's stream bytes in OHWI order, so one channel's filter is one
   contiguous run of the stream; or constant) in int16 scratch, then every output position with SMLAD pairs.
   The input's int16 operands are zero-padded (qbnn__pad16), so every window is whole: FH runs of FW * C
   contiguous operands. The channel's filter becomes a table of (pair of codes, byte offset of the pair's
   operands in the window): each filter row padded to an even length with a zero code (the extra operand it
   meets is the next one in the image, or slack), so the kernel is one flat loop of SMLADs over the table, each
   entry (one LDRD) serving 4 output positions. Scratch: the padded operands, and one channel's filter (codes
   and table), so RAM is bounded by the largest filter, not the layer. */
#include "qbnn_op_conv2d.h"

#include "qbnn_ops.h"

/* SMLAD pairs of one filter (QBNN_CONV_2D_PAIRS) in 32 bits for the kernel (below 2^30 once prepared) */
static uint32_t filter_pairs(const qbnn_op *op, const qbnn_conv_params *P) {
  return (uint32_t)P->filter_h * (((uint32_t)P->filter_w * op->in.c + 1u) / 2u);
}

int qbnn_op_conv2d_prepare(const qbnn_op *op, int kernel, int is_last, qbnn_op_needs *needs) {
  const qbnn_conv_params *P = (const qbnn_conv_params *)op->params;
  if (!P) return QBNN_ERR_NULL;
  int err = qbnn__check_window(op->in, op->out, P->filter_h, P->filter_w, P->stride_h, P->stride_w, P->pad_top,
                               P->pad_left);
  if (err != QBNN_OK) return err;
  /* the padded operands, and with them the filter (no larger) and its table, within the arena bound */
  const uint64_t x_elems = QBNN_SCRATCH(QBNN_CONV_2D_X_ELEMS, op, P->filter_h, P->filter_w, P->stride_h, P->stride_w);
  const uint64_t filter_elems =
      QBNN_SCRATCH(QBNN_CONV_2D_FILTER_ELEMS, op, P->filter_h, P->filter_w, P->stride_h, P->stride_w);
  if (!qbnn__fits_arena16(x_elems) || !qbnn__fits_arena16(filter_elems)) return QBNN_RT_ERR_LIMITS;
  const uint32_t dims[4] = {op->out.c, P->filter_h, P->filter_w, op->in.c};
  err = qbnn__check_weighted(&P->w, QBNN_FILTER_OHWI, dims, kernel, is_last, needs);
  if (err != QBNN_OK) return err;
  if (P->w.moments) return QBNN_RT_ERR_MODE; /* HYBRID / PFP are defined for dense layers only */
  needs->x_elems = x_elems;
  needs->filter_elems = filter_elems;
  return QBNN_OK;
}

/* The windows of the output positions in order (across output rows), as operand offsets (the one after the last
   window may lie beyond the operands: no pointer is formed to it). */
typedef struct {
  const int16_t *x;               /* the operands */
  int32_t at, row_start;          /* the current window; the first window of its output row */
  int32_t ox, ow, step, row_step; /* its column; output columns; operands between windows, between rows */
} walk_t;

static inline const char *walk_next(walk_t *w) {
  const int32_t cur = w->at;
  if (++w->ox < w->ow) {
    w->at += w->step;
  } else {
    w->ox = 0;
    w->at = w->row_start += w->row_step;
  }
  return (const char *)(w->x + cur);
}

/* One output channel: y[p * O] for the n output positions p, in chunks of 16: sums over the table's `pairs`
   entries (code pair, byte offset) of SMLAD(pair, the window's operands at the offset), 4 windows at a time,
   then the chunk's requantisation (its constants in registers for 16 outputs). Each entry is loaded once for 4
   windows (4 named accumulators: compilers keep them in registers, not an array); not inlined, so the loop has
   every register. A last group of fewer positions repeats its last window; only real outputs are stored. */
QBNN_NOINLINE void channel_outputs(const uint32_t *table, uint32_t pairs, walk_t w, int32_t n, const qbnn__rq *rq,
                                   int8_t *y, int32_t O) {
  for (int32_t p = 0; p < n; p += 16) {
    const int32_t m = n - p < 16 ? n - p : 16;
    int32_t acc[16];
    for (int32_t g = 0; g < m; g += 4) {
      const char *b0, *b1, *b2, *b3;
      if (g + 4 <= m && w.ox + 4 < w.ow) { /* 4 windows inside one output row, evenly spaced */
        const int32_t s = w.step * (int32_t)sizeof *w.x;
        b0 = (const char *)(w.x + w.at), b1 = b0 + s, b2 = b1 + s, b3 = b2 + s;
        w.at += 4 * w.step, w.ox += 4;
      } else {
        b0 = b1 = b2 = b3 = walk_next(&w);
        if (g + 1 < m) b1 = walk_next(&w);
        if (g + 2 < m) b2 = walk_next(&w);
        if (g + 3 < m) b3 = walk_next(&w);
      }
      int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
      const uint32_t *t = table;
      for (uint32_t k = pairs; k; --k, t += 2) {
        const uint32_t c = t[0], off = t[1];
        a0 = smlad(c, qbnn__ld32((const int16_t *)(const void *)(b0 + off)), a0);
        a1 = smlad(c, qbnn__ld32((const int16_t *)(const void *)(b1 + off)), a1);
        a2 = smlad(c, qbnn__ld32((const int16_t *)(const void *)(b2 + off)), a2);
        a3 = smlad(c, qbnn__ld32((const int16_t *)(const void *)(b3 + off)), a3);
      }
      acc[g] = a0, acc[g + 1] = a1, acc[g + 2] = a2, acc[g + 3] = a3;
    }
    qbnn__requant_run(rq, acc, m, y, O);
    y += m * O;
  }
}

void qbnn_op_conv2d_eval(const qbnn_op *op, const int8_t *in, int8_t *out, qbnn_op_ctx *ctx) {
  const qbnn_conv_params *P = (const qbnn_conv_params *)op->params;
  const qbnn_rt_layer *L = &P->w;
  const int32_t C = op->in.c, OW = op->out.w, O = op->out.c;
  const int32_t run = P->filter_w * C, row = ((OW - 1) * P->stride_w + P->filter_w) * C;
  const uint32_t pairs = filter_pairs(op, P);
  int16_t *x = ctx->x;
  uint32_t *table = (uint32_t *)(void *)ctx->rt->filter; /* 8-byte aligned */
  int16_t *f = ctx->rt->filter + 4 * pairs;
  if (!ctx->x_ready) qbnn__pad16(op, P, in, 1, x);
  ctx->x_ready = 1;
  qbnn_stream *s = L->core.mu ? &ctx->rt->streams[L->core.layer_index] : 0;
  const walk_t start = {x, 0, 0, 0, OW, P->stride_w * C, P->stride_h * row};
  for (int32_t o = 0; o < O; ++o) {
    qbnn__filter_row(L, (uint32_t)o, ctx->rt->kernel, ctx->mean, s, f);
    uint32_t *t = table;
    for (int32_t fy = 0; fy < P->filter_h; ++fy)
      for (int32_t i = 0; i < run; i += 2, t += 2) {
        const int16_t pair[2] = {f[fy * run + i], (int16_t)(i + 1 < run ? f[fy * run + i + 1] : 0)};
        memcpy(t, pair, 4); /* as the operands are loaded (either byte order) */
        t[1] = (uint32_t)(fy * row + i) * sizeof *x;
      }
    const qbnn__rq rq = qbnn__requant_of(L, (uint32_t)o);
    channel_outputs(table, pairs, start, op->out.h * OW, &rq, out + o, O);
  }
}
