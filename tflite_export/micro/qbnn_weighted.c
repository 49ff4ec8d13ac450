/* What the weighted ops (FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D) share: parameter checks and filter rows
   (sampled, mean or constant). See qbnn_ops.h. */
#include "qbnn_modes.h"
#include "qbnn_ops.h"

int qbnn__check_weighted(const qbnn_rt_layer *L, uint32_t format, const uint32_t *dims, int kernel, int is_last,
                         qbnn_op_needs *needs) {
  if (!L) return QBNN_ERR_NULL;
  needs->stream = L->core.mu ? (int32_t)L->core.layer_index : -1;
  /* the op's filter dims are the layer's R x C, R * C < 2^31 (the sampler core's bound): flat indices and byte
     counts fit 32 bits; the same check as the TFLM op's */
  switch (qbnn_filter_dims_check(format, format == QBNN_FILTER_OI ? 2u : 4u, dims, L->core.rows, L->core.cols)) {
    case QBNN_OK:
      break;
    case QBNN_ERR_SHAPE:
      return QBNN_RT_ERR_LIMITS;
    default:
      return QBNN_RT_ERR_CHAIN;
  }
  const uint32_t rows = L->core.rows;
  const uint64_t cols = L->core.cols;
  int32_t max_w;
  if (L->core.mu) { /* Bayesian */
    int err = qbnn_layer_check(&L->core);
    if (err != QBNN_OK) return err;
    if (L->core.layer_index >= QBNN_MAX_STREAMS) return QBNN_RT_ERR_LIMITS;
    /* the table kernels need one byte per weight (I4_FUSED) and the derived table, or PACKED pairs and their
       pair table of 2^p rows (a pair of p bits indexes no row beyond it) */
    if (kernel != QBNN_KERNEL_REF) {
      if (L->core.layout == QBNN_LAYOUT_PACKED) {
        if (!L->wlut || L->wlut_entries != (256u << (L->core.weight_bits + L->core.sigma_bits)))
          return QBNN_RT_ERR_KERNEL;
      } else if (L->core.layout != QBNN_LAYOUT_I4_FUSED || !(L->wlut || L->offsets)) {
        return QBNN_RT_ERR_KERNEL;
      }
    }
    err = qbnn__check_moments(L, is_last);
    if (err != QBNN_OK) return err;
    /* every stored code: the REF kernel indexes SIGMA_Q with the stored sigma code */
    err = qbnn_layer_check_codes(&L->core);
    if (err != QBNN_OK) return err;
    max_w = (1 << (L->core.weight_bits - 1)) - 1;
  } else {
    if (!L->filter) return QBNN_ERR_NULL;
    if (L->filter_bits != 8 && L->filter_bits != 4) return QBNN_ERR_BITS;
    if (L->moments) return QBNN_RT_ERR_MODE; /* moments describe sampled weights */
    max_w = L->filter_bits == 8 ? 128 : 8;
  }
  /* int8 tensors: x - zp stays in [-255, 255] (int16 operands), act_lut[q + 128] in bounds, and
     MultiplyByQuantizedMultiplier's shifts stay below 32 (TFLite: shift in [-31, 30]) */
  if (!qbnn__in_int8(L->in_zero_point) || !qbnn__in_int8(L->out_zero_point)) return QBNN_RT_ERR_RANGE;
  if (!qbnn__in_int8(L->act_min) || !qbnn__in_int8(L->act_max) || L->act_min > L->act_max) return QBNN_RT_ERR_RANGE;
  if ((L->multipliers == 0) != (L->shifts == 0)) return QBNN_ERR_NULL;
  for (uint32_t o = 0; o < (L->multipliers ? rows : 1u); ++o) {
    const int32_t m = L->multipliers ? L->multipliers[o] : L->multiplier;
    const int32_t s = L->shifts ? L->shifts[o] : L->shift;
    if (m < 0 || s < -31 || s > 30) return QBNN_RT_ERR_RANGE;
  }
  /* |acc| <= max|w| * 255 * cols; with the bias it must stay an int32 */
  const int64_t acc_bound = (int64_t)max_w * 255 * cols;
  if (acc_bound >= ((int64_t)1 << 30)) return QBNN_RT_ERR_LIMITS;
  if (L->bias)
    for (uint32_t o = 0; o < rows; ++o)
      if (L->bias[o] <= -(1 << 30) || L->bias[o] >= (1 << 30)) return QBNN_RT_ERR_RANGE;
  return QBNN_OK;
}

int qbnn__check_moments(const qbnn_rt_layer *L, int is_last) {
  const qbnn_layer_moments *mo = L->moments;
  if (!mo) return QBNN_OK;
  if (!mo->table) return QBNN_ERR_NULL;
  /* the table is indexed by the stored I4_FUSED byte or PACKED pair: 256 or 2^p entries */
  if (L->core.layout != QBNN_LAYOUT_I4_FUSED && L->core.layout != QBNN_LAYOUT_PACKED) return QBNN_RT_ERR_MODE;
  const uint32_t entries =
      L->core.layout == QBNN_LAYOUT_PACKED ? 1u << (L->core.weight_bits + L->core.sigma_bits) : 256u;
  if (mo->activation > QBNN_ACT_SOFTPLUS) return QBNN_RT_ERR_RANGE;
  if ((mo->activation == QBNN_ACT_SOFTPLUS) != (L->act_lut != 0)) return QBNN_RT_ERR_RANGE;
  if (is_last && mo->activation != QBNN_ACT_LINEAR) return QBNN_RT_ERR_RANGE; /* logits are linear */
  /* finite and positive (NaN fails both comparisons); bounded so that products with the int64 sums stay finite */
  if (!(mo->in_scale > 0.0f && mo->in_scale < 1e6f) || !(mo->w_scale > 0.0f && mo->w_scale < 1e6f))
    return QBNN_RT_ERR_RANGE;
  /* |E| <= M and Var <= M^2: bounds that keep every sum below in int64 / float range */
  const int32_t m = (1 << (L->core.weight_bits - 1)) - 1;
  for (uint32_t b = 0; b < entries; ++b) {
    const int32_t s1 = mo->table[2 * b], v = mo->table[2 * b + 1];
    if (s1 < -256 * m || s1 > 256 * m || v < 0 || v > 65536 * m * m) return QBNN_RT_ERR_RANGE;
  }
  return QBNN_OK;
}

void qbnn__packed_codes(const qbnn_rt_layer *L, uint32_t first, uint32_t n, qbnn_stream *s, int16_t *f) {
  qbnn_pairs q = qbnn__pairs_at(&L->core, first);
  for (uint32_t i = 0; i < n; ++i) f[i] = L->wlut[(qbnn_pair_next(&q) << 8) | qbnn_stream_byte(s)];
}

/* the two's complement int4 in the low nibble of v */
static inline int16_t int4_code(uint32_t v) { return (int16_t)((int32_t)((v & 0xFu) ^ 8u) - 8); }

void qbnn__filter_row(const qbnn_rt_layer *L, uint32_t row, int kernel, int mean, qbnn_stream *s, int16_t *f) {
  const uint32_t n = L->core.cols, first = row * n;
  if (!L->core.mu) { /* constant */
    if (L->filter_bits == 8) {
      const int8_t *w = L->filter + first;
      for (uint32_t i = 0; i < n; ++i) f[i] = w[i];
    } else { /* TFLite int4: element j in byte j/2, low nibble first; a byte (two codes) at a time */
      const uint8_t *b = (const uint8_t *)L->filter + first / 2;
      uint32_t i = 0;
      if (first & 1u) f[i++] = int4_code(*b++ >> 4);
      for (; i + 2 <= n; i += 2, ++b) {
        f[i] = int4_code(*b);
        f[i + 1] = int4_code(*b >> 4);
      }
      if (i < n) f[i] = int4_code(*b);
    }
    return;
  }
  if (mean && L->core.layout == QBNN_LAYOUT_I4_FUSED) { /* mu codes: the low nibbles */
    const uint8_t *p = L->core.mu + first;
    for (uint32_t i = 0; i < n; ++i) f[i] = (int16_t)((int32_t)((p[i] & 0xFu) ^ 8u) - 8);
    return;
  }
  if (mean && L->core.layout == QBNN_LAYOUT_PACKED) { /* mu codes: the low b bits of each pair, sign-extended */
    const uint32_t b = L->core.weight_bits;
    qbnn_pairs q = qbnn__pairs_at(&L->core, first);
    for (uint32_t i = 0; i < n; ++i) f[i] = (int16_t)qbnn_pair_mu(qbnn_pair_next(&q), b);
    return;
  }
  if (mean || kernel == QBNN_KERNEL_REF) { /* the sampler core per weight (any layout) */
    const int32_t max_code = (1 << (L->core.weight_bits - 1)) - 1;
    for (uint32_t i = 0; i < n; ++i) {
      int32_t mu;
      uint32_t k;
      qbnn_layer_codes(&L->core, first + i, &mu, &k);
      f[i] = (int16_t)(mean ? mu : qbnn_sample_weight(mu, L->core.sigma_q[k], qbnn_stream_byte(s), max_code));
    }
    return;
  }
  if (L->core.layout == QBNN_LAYOUT_PACKED) { /* pair table: one read per weight */
    qbnn__packed_codes(L, first, n, s, f);
    return;
  }
  const uint8_t *p = L->core.mu + first;
  if (!L->wlut) { /* offset table */
    qbnn__offset_codes(L, p, n, s, f);
    return;
  }
  qbnn__derived_codes(L->wlut, p, n, s, f);
}

int qbnn__check_window(qbnn_dims in, qbnn_dims out, uint32_t fh, uint32_t fw, uint32_t sh, uint32_t sw,
                       uint32_t pad_top, uint32_t pad_left) {
  if (fh == 0 || fw == 0 || sh == 0 || sw == 0) return QBNN_RT_ERR_OP;
  /* VALID: out = (in - f + s) / s, no padding; SAME: out = ceil(in / s), pad = max((out-1) s + f - in, 0) / 2 */
  const int valid_h = in.h >= fh && out.h == (in.h - fh + sh) / sh && pad_top == 0;
  const int valid_w = in.w >= fw && out.w == (in.w - fw + sw) / sw && pad_left == 0;
  const int64_t tot_h = (int64_t)(out.h - 1) * sh + fh - in.h, tot_w = (int64_t)(out.w - 1) * sw + fw - in.w;
  const int same_h = out.h == (in.h + sh - 1) / sh && pad_top == (uint64_t)(tot_h > 0 ? tot_h : 0) / 2;
  const int same_w = out.w == (in.w + sw - 1) / sw && pad_left == (uint64_t)(tot_w > 0 ? tot_w : 0) / 2;
  if (out.h == 0 || out.w == 0) return QBNN_RT_ERR_CHAIN;
  if (!((valid_h && valid_w) || (same_h && same_w))) return QBNN_RT_ERR_CHAIN;
  return QBNN_OK;
}

void qbnn__pad16(const qbnn_op *op, const qbnn_conv_params *P, const int8_t *in, uint32_t slack, int16_t *x) {
  const int32_t H = op->in.h, W = op->in.w, C = op->in.c, zp = P->w.in_zero_point;
  const int32_t Hp = (op->out.h - 1) * P->stride_h + P->filter_h, Wp = (op->out.w - 1) * P->stride_w + P->filter_w;
  const int32_t left = P->pad_left, inside = (Wp - left < W ? Wp - left : W); /* VALID may leave columns out */
  for (int32_t py = 0; py < Hp; ++py, x += Wp * C) {
    const int32_t iy = py - P->pad_top;
    if (iy < 0 || iy >= H) {
      memset(x, 0, (size_t)(Wp * C) * sizeof *x);
      continue;
    }
    memset(x, 0, (size_t)(left * C) * sizeof *x);
    qbnn__offset16(in + iy * W * C, (uint32_t)(inside * C), zp, x + left * C);
    memset(x + (left + inside) * C, 0, (size_t)((Wp - left - inside) * C) * sizeof *x);
  }
  memset(x, 0, slack * sizeof *x);
}
