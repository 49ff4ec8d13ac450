/* HYBRID and PFP modes and the mean-code pass; SPEC.md section 11, numpy reference tflite_export/modes.py.
   HYBRID is integer only and bit-exact with the reference. PFP is float32 written operation by operation in the
   reference's order with its own exp / log (only + - * / and sqrt, all correctly rounded in IEEE and in
   libgcc's soft float), so it reproduces the reference's floats on every core; compile without FMA
   contraction (-std=c99 implies -ffp-contract=off in GCC). */
#include "qbnn_modes.h"

#include <string.h>

#include "qbnn_fixedpoint.h"
#include "qbnn_ops.h"
#include "qbnn_runtime_internal.h"
#include "qbnn_sampler.h"

#include "qbnn_simd.h"

/* ---- scratch in the caller's arena (qbnn_plan.h sizes it: QBNN_HYBRID_BYTES, QBNN_PFP_BYTES, pieces in the
   order cut here; qbnn_init places rt->hybrid / rt->pfp, non-NULL only for a model that can run the mode) ---- */

/* HYBRID at a layer of R rows and C cols: nonzero-input list uint16[C], A1 and A2 int64[R], sdq int32[R],
   the sampled layer's output int8[R]. */
typedef struct {
  uint16_t *nz;
  int64_t *a1, *a2;
  int32_t *sdq;
  int8_t *h;
} hybrid_scratch;

/* The next 8-byte aligned piece of `bytes` at offset *o of base. */
static void *take(uint8_t *base, uint32_t *o, uint32_t bytes) {
  void *p = base + *o;
  *o += qbnn__round8(bytes);
  return p;
}

static void hybrid_cut(uint8_t *base, uint32_t rows, uint32_t cols, hybrid_scratch *s) {
  uint32_t o = 0;
  s->nz = (uint16_t *)take(base, &o, 2 * cols);
  s->a1 = (int64_t *)take(base, &o, 8 * rows);
  s->a2 = (int64_t *)take(base, &o, 8 * rows);
  s->sdq = (int32_t *)take(base, &o, 4 * rows);
  s->h = (int8_t *)take(base, &o, rows);
}

/* PFP: layer 0's nonzero inputs and A1 / A2, then means and variances of two layers (ping-pong, the widest
   layer's rows) and E[h^2] of a layer's inputs (the widest later layer's cols). */
typedef struct {
  uint16_t *nz;
  int64_t *a1, *a2;
  float *m[2], *v[2], *e2in;
} pfp_scratch;

static void pfp_cut(uint8_t *base, uint32_t rows0, uint32_t cols0, uint32_t max_rows, uint32_t max_cols,
                    pfp_scratch *s) {
  uint32_t o = 0;
  s->nz = (uint16_t *)take(base, &o, 2 * cols0);
  s->a1 = (int64_t *)take(base, &o, 8 * rows0);
  s->a2 = (int64_t *)take(base, &o, 8 * rows0);
  for (int k = 0; k < 2; ++k) {
    s->m[k] = (float *)take(base, &o, 4 * max_rows);
    s->v[k] = (float *)take(base, &o, 4 * max_rows);
  }
  s->e2in = (float *)take(base, &o, 4 * max_cols);
}

/* from the first Bayesian op on, the modes' ops are dense layers whose parameters are a qbnn_rt_layer (qbnn_init
   places rt->hybrid / rt->pfp only then) */
static const qbnn_rt_layer *layer(const qbnn_model_t *m, int l) { return (const qbnn_rt_layer *)m->ops[l].params; }

/* PFP's widest layer (rows) and widest input after its first layer (cols), over ops first..num_ops-1 */
static void pfp_widths(const qbnn_model_t *m, int first, uint32_t *max_rows, uint32_t *max_cols) {
  *max_rows = *max_cols = 0;
  for (int l = first; l < m->num_ops; ++l) {
    const qbnn_rt_layer *L = layer(m, l);
    if (L->core.rows > *max_rows) *max_rows = L->core.rows;
    if (l > first && L->core.cols > *max_cols) *max_cols = L->core.cols;
  }
}

static void pfp_geometry(qbnn_runtime_t *rt, pfp_scratch *w) {
  uint32_t max_rows, max_cols;
  pfp_widths(rt->model, rt->first_bayesian, &max_rows, &max_cols);
  const qbnn_rt_layer *L0 = layer(rt->model, rt->first_bayesian);
  pfp_cut(rt->pfp, L0->core.rows, L0->core.cols, max_rows, max_cols, w);
}

static int8_t requantize(const qbnn_rt_layer *L, int32_t acc) { return qbnn__requantize(L, acc, 0); }

/* ---- layer 0's exact accumulator moments (SPEC 11.2) --------------------------------------------------- */
static int nonzero_inputs(const qbnn_rt_layer *L, const int8_t *input, uint16_t *nz) {
  int n = 0;
  for (uint32_t c = 0; c < L->core.cols; ++c)
    if ((int32_t)input[c] != L->in_zero_point) nz[n++] = (uint16_t)c;
  return n;
}

/* A1 = sum_c S1 x_c, A2 = sum_c V x_c^2 over the nonzero x_c = q_c - zp of row r (the table's index: the
   I4_FUSED byte or the PACKED pair of the weight) */
static void row_sums(const qbnn_rt_layer *L, uint32_t r, const int8_t *input, const uint16_t *nz, int nnz,
                     int64_t *a1, int64_t *a2) {
  const uint8_t *p = L->core.mu + r * L->core.cols;
  const int32_t *t = L->moments->table, zp = L->in_zero_point;
  int64_t s1 = 0, s2 = 0;
  if (L->core.layout == QBNN_LAYOUT_PACKED) { /* sparse columns: each pair read where it sits */
    const uint32_t first = r * L->core.cols, pb = (uint32_t)L->core.weight_bits + L->core.sigma_bits;
    for (int j = 0; j < nnz; ++j) {
      const uint32_t c = nz[j];
      const int32_t x = (int32_t)input[c] - zp, *e = t + 2 * qbnn_packed_pair(L->core.mu, first + c, pb);
      s1 += (int64_t)e[0] * x;
      s2 += (int64_t)e[1] * (x * x);
    }
    *a1 = s1;
    *a2 = s2;
    return;
  }
  for (int j = 0; j < nnz; ++j) {
    const uint32_t c = nz[j];
    const int32_t x = (int32_t)input[c] - zp, *e = t + 2 * p[c];
    s1 += (int64_t)e[0] * x;
    s2 += (int64_t)e[1] * (x * x);
  }
  *a1 = s1;
  *a2 = s2;
}

/* A1, A2 of every row of layer 0 (nz: scratch for its nonzero-input list) */
static void layer0_sums(const qbnn_rt_layer *L, const int8_t *input, uint16_t *nz, int64_t *a1, int64_t *a2) {
  const int nnz = nonzero_inputs(L, input, nz);
  for (uint32_t r = 0; r < L->core.rows; ++r) row_sums(L, r, input, nz, nnz, a1 + r, a2 + r);
}

/* round(sqrt(a)), a < 2^62: a float estimate (three Newton steps on 1/sqrt from the bit trick: + and * only,
   no libm, whose sqrtf wrapper links soft-double code), corrected to the exact floor (any estimate gives the
   same integer), then rounded up when a - r^2 > r (no ties) */
static uint32_t isqrt_round(uint64_t a) {
  if (a == 0) return 0;
  const float x = (float)a;
  uint32_t i;
  memcpy(&i, &x, sizeof i);
  float y;
  i = 0x5F3759DFu - (i >> 1);
  memcpy(&y, &i, sizeof y);
  for (int k = 0; k < 3; ++k) y = y * (1.5f - 0.5f * x * y * y);
  uint64_t r = (uint64_t)(uint32_t)(x * y);
  while (r * r > a) --r;
  while ((r + 1) * (r + 1) <= a) ++r;
  return (uint32_t)(r + (a - r * r > r));
}

/* One hybrid accumulator (SPEC 11.2): n = (sdq * EPS_Q[u] + 2^11) >> 12 (Q8), acc = (A1 + 128 + n) >> 8 */
static inline int8_t hybrid_unit(const qbnn_rt_layer *L, int64_t base, int32_t sdq, uint32_t u) {
  const int32_t n = (int32_t)(((int64_t)sdq * QBNN_EPS_Q[u] + (1 << (QBNN_EPS_FRAC_BITS - 1))) >> QBNN_EPS_FRAC_BITS);
  int64_t acc = (base + n) >> 8;
  if (acc > INT32_MAX) acc = INT32_MAX;
  if (acc < INT32_MIN) acc = INT32_MIN;
  return requantize(L, (int32_t)acc);
}

/* ---- SPEC 7.1: the jackknife correction of the predictive entropy ------------------------------------------
   G = min(S, QBNN_JK_GROUPS) contiguous groups, group g = samples floor(g S / G) .. floor((g + 1) S / G) - 1 of
   m_g samples; correction = sum_g w_g (H - H_-g) in g order, w_g = float(S - m_g) / float(S), H and H_-g the
   float32 entropies (qlog) of the mean with and without group g. Float32 in the reference's order: bit-exact with
   tflite_export/modes.py (jk_correction_counts / jk_correction_probs). */
static int jk_groups(int num_samples) { return num_samples < QBNN_JK_GROUPS ? num_samples : QBNN_JK_GROUPS; }
static int jk_group(int s, int num_samples, int groups) {
  return (int)(((uint32_t)(s + 1) * (uint32_t)groups - 1u) / (uint32_t)num_samples);
}
static int jk_size(int g, int num_samples, int groups) {
  return (int)(((uint32_t)(g + 1) * (uint32_t)num_samples) / (uint32_t)groups -
               ((uint32_t)g * (uint32_t)num_samples) / (uint32_t)groups);
}
static float qlog(float p);
static float entropy_counts(const uint32_t *counts, int nc) {
  uint32_t total = 0;
  for (int c = 0; c < nc; ++c) total += counts[c];
  const float t = (float)total;
  float h = 0.0f;
  for (int c = 0; c < nc; ++c) {
    if (counts[c]) {
      const float p = (float)counts[c] / t;
      h = h - p * qlog(p);
    }
  }
  return h;
}
void qbnn__add_sample(qbnn_runtime_t *rt, int s, int num_samples, const int8_t *codes, float *entropy_sum,
                      qbnn_result_t *res) {
  const int nc = rt->model->num_classes;
  qbnn__accumulate(codes, nc, res->counts);
  qbnn__add_entropy(entropy_sum, qbnn__sample_entropy(codes, nc));
  qbnn__jk_add_codes((uint32_t(*)[QBNN_MAX_CLASSES])rt->jk, s, num_samples, codes, nc);
}

void qbnn__finish_samples(qbnn_runtime_t *rt, int num_samples, const float *entropy_sum, qbnn_result_t *res) {
  const int nc = rt->model->num_classes;
  qbnn__finish(res->counts, num_samples, nc, entropy_sum, res);
  qbnn__jk_finish_counts((const uint32_t(*)[QBNN_MAX_CLASSES])rt->jk, num_samples, nc, res);
}

static void jk_set(qbnn_result_t *res, float corr) {
  res->entropy_correction = corr;
  res->predictive_entropy_corrected = res->predictive_entropy + corr;
  res->mutual_information_corrected = res->mutual_information + corr;
}

void qbnn__jk_add_codes(uint32_t (*gc)[QBNN_MAX_CLASSES], int s, int num_samples, const int8_t *codes, int nc) {
  const int ng = jk_groups(num_samples), g = jk_group(s, num_samples, ng);
  if (g != (s == 0 ? -1 : jk_group(s - 1, num_samples, ng))) /* a group's first sample: start its sums */
    for (int c = 0; c < nc; ++c) gc[g][c] = 0u;
  for (int c = 0; c < nc; ++c) gc[g][c] += (uint32_t)((int32_t)codes[c] + 128);
}

void qbnn__jk_finish_counts(const uint32_t (*gc)[QBNN_MAX_CLASSES], int num_samples, int nc, qbnn_result_t *res) {
  const int ng = jk_groups(num_samples);
  float corr = 0.0f;
  if (ng > 1) {
    const float h = entropy_counts(res->counts, nc);
    for (int g = 0; g < ng; ++g) {
      uint32_t rest[QBNN_MAX_CLASSES];
      const int size = jk_size(g, num_samples, ng);
      const float w = (float)(num_samples - size) / (float)num_samples;
      for (int c = 0; c < nc; ++c) rest[c] = res->counts[c] - gc[g][c];
      corr = corr + w * (h - entropy_counts(rest, nc));
    }
  }
  jk_set(res, corr);
}

/* `input`: the first Bayesian op's input (the deterministic prefix's output, computed once). */
static int predict_hybrid(qbnn_runtime_t *rt, const int8_t *input, int num_samples, qbnn_result_t *res) {
  const qbnn_model_t *m = rt->model;
  const int fb = rt->first_bayesian;
  const qbnn_rt_layer *L = layer(m, fb);
  const uint32_t rows = L->core.rows;
  hybrid_scratch w;
  hybrid_cut(rt->hybrid, rows, L->core.cols, &w);
  layer0_sums(L, input, w.nz, w.a1, w.a2);
  for (uint32_t r = 0; r < rows; ++r) {
    const uint64_t sd8 = isqrt_round((uint64_t)w.a2[r]); /* < 2^31: the product below fits */
    w.sdq[r] = (int32_t)((sd8 * QBNN_HYBRID_Z_GAIN + (1u << (QBNN_HYBRID_GAIN_BITS - 1))) >> QBNN_HYBRID_GAIN_BITS);
    w.a1[r] += 128; /* the rounding term of (A1 + n + 128) >> 8 */
  }
  float entropy_sum[2] = {0.0f, 0.0f};
  qbnn_stream *s0 = &rt->streams[L->core.layer_index];
  for (int s = 0; s < num_samples; ++s) {
    int8_t q[QBNN_MAX_CLASSES];
    if (s0->nbuf == 0 && (rows & 3u) == 0) { /* whole PRNG words: the same bytes as qbnn_stream_byte */
      uint32_t st = s0->state;
      for (uint32_t r = 0; r < rows; r += 4) {
        st = qbnn_xorshift32(st);
        for (uint32_t j = 0; j < 4; ++j)
          w.h[r + j] = hybrid_unit(L, w.a1[r + j], w.sdq[r + j], (st >> (8 * j)) & 0xFFu);
      }
      s0->state = st;
      s0->buf = 0;
      s0->position += rows;
    } else {
      for (uint32_t r = 0; r < rows; ++r) w.h[r] = hybrid_unit(L, w.a1[r], w.sdq[r], qbnn_stream_byte(s0));
    }
    qbnn__run_tail(rt, fb + 1, w.h, q);
    qbnn__add_sample(rt, s, num_samples, q, entropy_sum, res);
  }
  qbnn__finish_samples(rt, num_samples, entropy_sum, res);
  return QBNN_OK;
}

/* ---- float32 helpers (mirrored by tflite_export/modes.py; hex literals = its float32 constants) ------- */
static const float kExpC[7] = {
    0x1.0000000000000p+0f, 0x1.fffffc0000000p-1f, 0x1.fffefc0000000p-2f, 0x1.5542240000000p-3f,
    0x1.5406d40000000p-5f, 0x1.056e1a0000000p-7f, 0x1.03049e0000000p-10f,
};
static const float kAtanhC[7] = {
    0x1.0000000000000p+0f, 0x1.5555560000000p-2f, 0x1.99999a0000000p-3f, 0x1.24924a0000000p-3f,
    0x1.c71c720000000p-4f, 0x1.745d180000000p-4f, 0x1.3b13b20000000p-4f,
};
static const float kGhNodes10[10] = {
    -0x1.3701700000000p+2f, -0x1.ca79320000000p+1f, -0x1.3dfe640000000p+1f, -0x1.774b100000000p+0f,
    -0x1.f092fc0000000p-2f, 0x1.f092fc0000000p-2f, 0x1.774b100000000p+0f, 0x1.3dfe640000000p+1f,
    0x1.ca79320000000p+1f, 0x1.3701700000000p+2f,
};
static const float kGhWeights10[10] = {
    0x1.2148720000000p-18f, 0x1.8d728e0000000p-11f, 0x1.391fc80000000p-6f, 0x1.15787a0000000p-3f,
    0x1.60e9ec0000000p-2f, 0x1.60e9ec0000000p-2f, 0x1.15787a0000000p-3f, 0x1.391fc80000000p-6f,
    0x1.8d728e0000000p-11f, 0x1.2148720000000p-18f,
};
static const float kGhNodes16[14] = {
    -0x1.5e38f20000000p+2f, -0x1.1f8c940000000p+2f, -0x1.cce96e0000000p+1f, -0x1.614fb60000000p+1f,
    -0x1.f3b4fc0000000p+0f, -0x1.29f0b40000000p+0f, -0x1.8c0af80000000p-2f, 0x1.8c0af80000000p-2f,
    0x1.29f0b40000000p+0f, 0x1.f3b4fc0000000p+0f, 0x1.614fb60000000p+1f, 0x1.cce96e0000000p+1f,
    0x1.1f8c940000000p+2f, 0x1.5e38f20000000p+2f,
};
static const float kGhWeights16[14] = {
    0x1.19350e0000000p-23f, 0x1.00b1240000000p-16f, 0x1.13c4800000000p-11f, 0x1.dc3efc0000000p-8f,
    0x1.835b500000000p-5f, 0x1.4446e80000000p-3f, 0x1.2572380000000p-2f, 0x1.2572380000000p-2f,
    0x1.4446e80000000p-3f, 0x1.835b500000000p-5f, 0x1.dc3efc0000000p-8f, 0x1.13c4800000000p-11f,
    0x1.00b1240000000p-16f, 0x1.19350e0000000p-23f,
};
static const float kGhNodes32[22] = {
    -0x1.85b1980000000p+2f, -0x1.5ccd580000000p+2f, -0x1.3549640000000p+2f, -0x1.0ed9700000000p+2f,
    -0x1.d288320000000p+1f, -0x1.88b8a80000000p+1f, -0x1.3ffac60000000p+1f, -0x1.f021160000000p+0f,
    -0x1.6187ec0000000p+0f, -0x1.a791e40000000p-1f, -0x1.1a28d80000000p-2f, 0x1.1a28d80000000p-2f,
    0x1.a791e40000000p-1f, 0x1.6187ec0000000p+0f, 0x1.f021160000000p+0f, 0x1.3ffac60000000p+1f,
    0x1.88b8a80000000p+1f, 0x1.d288320000000p+1f, 0x1.0ed9700000000p+2f, 0x1.3549640000000p+2f,
    0x1.5ccd580000000p+2f, 0x1.85b1980000000p+2f,
};
static const float kGhWeights32[22] = {
    0x1.3dd4820000000p-29f, 0x1.7d72d20000000p-24f, 0x1.1470140000000p-19f, 0x1.005aae0000000p-15f,
    0x1.3d41080000000p-12f, 0x1.0e46f40000000p-9f, 0x1.4484420000000p-7f, 0x1.176d8a0000000p-5f,
    0x1.5d92840000000p-4f, 0x1.4097840000000p-3f, 0x1.b192b00000000p-3f, 0x1.b192b00000000p-3f,
    0x1.4097840000000p-3f, 0x1.5d92840000000p-4f, 0x1.176d8a0000000p-5f, 0x1.4484420000000p-7f,
    0x1.0e46f40000000p-9f, 0x1.3d41080000000p-12f, 0x1.005aae0000000p-15f, 0x1.1470140000000p-19f,
    0x1.7d72d20000000p-24f, 0x1.3dd4820000000p-29f,
};
#define K_LOG2E 0x1.7154760000000p+0f
#define K_LN2 0x1.62e4300000000p-1f
#define K_LN2_HI 0x1.6300000000000p-1f
#define K_LN2_LO -0x1.bd01060000000p-13f
#define K_EXP_MIN -0x1.5c00000000000p+6f
#define K_INV_SQRT2PI 0x1.9884540000000p-2f
#define K_FLT_MIN 0x1.0000000000000p-126f

/* the float helpers are forced inline so that a Gauss-Hermite loop keeps their constants in registers */
#if defined(__GNUC__)
#define QBNN_INLINE static inline __attribute__((always_inline))
#else
#define QBNN_INLINE static inline
#endif

QBNN_INLINE float bits_to_float(uint32_t b) {
  float f;
  memcpy(&f, &b, sizeof f);
  return f;
}

/* exp(x) for x <= 0 */
QBNN_INLINE float qexp_neg(float x) {
  if (x < K_EXP_MIN) return 0.0f;
  const int32_t k = (int32_t)(x * K_LOG2E);
  const float kf = (float)k;
  const float r = (x - kf * K_LN2_HI) - kf * K_LN2_LO;
  float p = kExpC[6];
  for (int i = 5; i >= 0; --i) p = p * r + kExpC[i];
  return p * bits_to_float((uint32_t)(k + 127) << 23);
}

/* log(1 + y) for y in [0, 1] */
QBNN_INLINE float qlog1p01(float y) {
  const float s = y / (2.0f + y), s2 = s * s;
  float p = kAtanhC[6];
  for (int j = 5; j >= 0; --j) p = p * s2 + kAtanhC[j];
  return (2.0f * s) * p;
}

/* log(p) for a normal positive float */
static float qlog(float p) {
  uint32_t b;
  memcpy(&b, &p, sizeof b);
  const int32_t e = (int32_t)((b >> 23) & 0xFFu) - 127;
  const float m = bits_to_float((b & 0x007FFFFFu) | 0x3F800000u);
  return (float)e * K_LN2 + qlog1p01(m - 1.0f);
}

/* max(x, 0) + log1p(exp(-|x|)); |x| >= 16: max(x, 0); exp(-|x|) < 2^-12: log1p(y) = y (1 - y / 2) */
QBNN_INLINE float qsoftplus(float x) {
  const float ax = x < 0.0f ? -x : x, base = x > 0.0f ? x : 0.0f;
  if (ax >= 16.0f) return base;
  const float y = qexp_neg(-ax);
  return base + (y < 0x1p-12f ? y * (1.0f - 0.5f * y) : qlog1p01(y));
}

static void softplus_moments(float m, float v, float *mean_out, float *var_out) {
  const float sd = sqrtf(v);
  /* the rule by sd: 10 nodes (sd <= 1), 14 (sd <= 2), 22 (above); tables pruned as modes.gauss_hermite */
  const float *t = kGhNodes32, *w = kGhWeights32;
  int n = (int)(sizeof kGhNodes32 / sizeof kGhNodes32[0]);
  if (sd <= 1.0f) {
    t = kGhNodes10, w = kGhWeights10, n = (int)(sizeof kGhNodes10 / sizeof kGhNodes10[0]);
  } else if (sd <= 2.0f) {
    t = kGhNodes16, w = kGhWeights16, n = (int)(sizeof kGhNodes16 / sizeof kGhNodes16[0]);
  }
  /* centred on f0 = softplus(m): the variance does not cancel when sd << mean */
  const float f0 = qsoftplus(m);
  float s1 = 0.0f, sq = 0.0f;
  for (int i = 0; i < n; ++i) {
    const float d = qsoftplus(m + sd * t[i]) - f0;
    const float wd = w[i] * d;
    s1 = s1 + wd;
    sq = sq + wd * d;
  }
  const float var = sq - s1 * s1;
  *mean_out = f0 + s1;
  *var_out = var > 0.0f ? var : 0.0f;
}

/* Phi(a), 1 - Phi(a) (Abramowitz-Stegun 26.2.17, the tail computed directly) and phi(a) */
static float qphi_cdf(float a, float *ccdf, float *pdf) {
  const float z = a < 0.0f ? -a : a;
  const float t = 1.0f / (1.0f + 0x1.da67120000000p-3f * z);
  const float poly =
      t * (0x1.470bf40000000p-2f +
           t * (-0x1.6d1f0e0000000p-2f + t * (0x1.c80ef00000000p+0f + t * (-0x1.d23dd40000000p+0f +
                                                                            t * 0x1.548cde0000000p+0f))));
  *pdf = K_INV_SQRT2PI * qexp_neg(-0.5f * z * z);
  const float upper = *pdf * poly, lower = 1.0f - upper;
  *ccdf = a >= 0.0f ? upper : lower;
  return a >= 0.0f ? lower : upper;
}

/* Var = m^2 Phi (1 - Phi) + v Phi + m sd phi (1 - 2 Phi) - v phi^2 (no cancellation of E[relu^2] - E^2) */
static void relu_moments(float m, float v, float *mean_out, float *var_out) {
  const float sd = sqrtf(v);
  if (!(sd > 0.0f)) {
    *mean_out = m > 0.0f ? m : 0.0f;
    *var_out = 0.0f;
    return;
  }
  float ccdf, pdf;
  const float cdf = qphi_cdf(m / sd, &ccdf, &pdf);
  const float mean = m * cdf + sd * pdf;
  const float var = (((m * m) * (cdf * ccdf) + v * cdf) + (m * sd) * (pdf * (ccdf - cdf))) - (v * pdf) * pdf;
  *mean_out = mean;
  *var_out = var > 0.0f ? var : 0.0f;
}

static void activation_moments(int act, float *m, float *v, uint32_t n) {
  for (uint32_t r = 0; r < n; ++r) {
    if (act == QBNN_ACT_SOFTPLUS) softplus_moments(m[r], v[r], &m[r], &v[r]);
    else if (act == QBNN_ACT_RELU) relu_moments(m[r], v[r], &m[r], &v[r]);
  }
}

/* -sum_c p_c log p_c, terms with p_c < FLT_MIN are 0 */
static float entropy_f32(const float *p, int n) {
  float h = 0.0f;
  for (int c = 0; c < n; ++c)
    if (p[c] >= K_FLT_MIN) h = h - p[c] * qlog(p[c]);
  return h;
}

void qbnn__jk_add_probs(float (*gs)[QBNN_MAX_CLASSES], int s, int num_samples, const float *p, int nc) {
  const int ng = jk_groups(num_samples), g = jk_group(s, num_samples, ng);
  if (g != (s == 0 ? -1 : jk_group(s - 1, num_samples, ng))) /* a group's first sample: start its sums */
    for (int c = 0; c < nc; ++c) gs[g][c] = 0.0f;
  for (int c = 0; c < nc; ++c) gs[g][c] = gs[g][c] + p[c];
}

void qbnn__jk_finish_probs(const float (*gs)[QBNN_MAX_CLASSES], const float *prob_sum, int num_samples, int nc,
                           qbnn_result_t *res) {
  const int ng = jk_groups(num_samples);
  float corr = 0.0f;
  for (int g = 0; g < ng && ng > 1; ++g) { /* leave group g out: mean (pm - gs[g]) / (S - m_g) */
    const int size = jk_size(g, num_samples, ng);
    const float w = (float)(num_samples - size) / (float)num_samples, rest = (float)(num_samples - size);
    float lo[QBNN_MAX_CLASSES];
    for (int c = 0; c < nc; ++c) lo[c] = (prob_sum[c] - gs[g][c]) / rest;
    corr = corr + w * (res->predictive_entropy - entropy_f32(lo, nc));
  }
  jk_set(res, corr);
}

static int predict_pfp(qbnn_runtime_t *rt, const int8_t *input, int num_samples, qbnn_result_t *res) {
  const qbnn_model_t *m = rt->model;
  const int fb = rt->first_bayesian, nl = m->num_ops, nc = m->num_classes;
  /* the first Bayesian layer: exact moments of the accumulators, in real units (s = s_in s_w); `input` is its
     input (the deterministic prefix's output, computed once) */
  const qbnn_rt_layer *L0 = layer(m, fb);
  const float s = L0->moments->in_scale * L0->moments->w_scale;
  const float cm = s * (1.0f / 256.0f), cv = (s * s) * (1.0f / 65536.0f);
  pfp_scratch w;
  pfp_geometry(rt, &w);
  float *hm = w.m[0], *hv = w.v[0];
  const int64_t *a1 = w.a1, *a2 = w.a2;
  layer0_sums(L0, input, w.nz, w.a1, w.a2);
  for (uint32_t r = 0; r < L0->core.rows; ++r) {
    hm[r] = (float)a1[r] * cm;
    hv[r] = (float)a2[r] * cv;
  }
  if (nl > fb + 1) activation_moments(L0->moments->activation, hm, hv, L0->core.rows);
  /* later layers: mean field, Var[sum w h] = sum Var[w] E[h^2] + E[w]^2 Var[h] */
  for (int l = fb + 1; l < nl; ++l) {
    const qbnn_rt_layer *L = layer(m, l);
    const uint32_t rows = L->core.rows, cols = L->core.cols;
    const int32_t *t = L->moments->table;
    float *om = w.m[(l - fb) & 1], *ov = w.v[(l - fb) & 1]; /* the first layer's are in [0] */
    float *e2in = w.e2in; /* E[h^2] of the inputs */
    for (uint32_t c = 0; c < cols; ++c) e2in[c] = hm[c] * hm[c] + hv[c];
    const float sw = L->moments->w_scale;
    const float cm_l = sw * (1.0f / 256.0f), cv_l = (sw * sw) * (1.0f / 65536.0f);
    const uint8_t *p = L->core.mu;
    uint32_t r = 0;
    if (L->core.layout == QBNN_LAYOUT_PACKED) { /* the pairs in order, row after row; same sums as below */
      qbnn_pairs q = qbnn__pairs_at(&L->core, 0);
      for (; r < rows; ++r) {
        float am = 0.0f, av = 0.0f;
        for (uint32_t c = 0; c < cols; ++c) {
          const int32_t *q0 = t + 2 * qbnn_pair_next(&q);
          const float e = (float)q0[0], vf = (float)q0[1];
          am = am + e * hm[c];
          av = av + (vf * e2in[c] + (e * e) * hv[c]);
        }
        om[r] = am * cm_l;
        ov[r] = av * cv_l;
      }
    }
    for (; r + 1 < rows; r += 2, p += 2 * cols) { /* two rows share the input loads; same sums as one */
      const uint8_t *p1 = p + cols;
      float am = 0.0f, av = 0.0f, am1 = 0.0f, av1 = 0.0f;
      for (uint32_t c = 0; c < cols; ++c) {
        const float h = hm[c], e2 = e2in[c], v = hv[c];
        const int32_t *q0 = t + 2 * p[c], *q1 = t + 2 * p1[c];
        const float e = (float)q0[0], vf = (float)q0[1], g = (float)q1[0], gf = (float)q1[1];
        am = am + e * h;
        av = av + (vf * e2 + (e * e) * v);
        am1 = am1 + g * h;
        av1 = av1 + (gf * e2 + (g * g) * v);
      }
      om[r] = am * cm_l;
      ov[r] = av * cv_l;
      om[r + 1] = am1 * cm_l;
      ov[r + 1] = av1 * cv_l;
    }
    for (; r < rows; ++r, p += cols) {
      float am = 0.0f, av = 0.0f;
      for (uint32_t c = 0; c < cols; ++c) {
        const int32_t *q0 = t + 2 * p[c];
        const float e = (float)q0[0], vf = (float)q0[1];
        am = am + e * hm[c];
        av = av + (vf * e2in[c] + (e * e) * hv[c]);
      }
      om[r] = am * cm_l;
      ov[r] = av * cv_l;
    }
    hm = om;
    hv = ov;
    if (l < nl - 1) activation_moments(L->moments->activation, hm, hv, rows);
  }
  /* K logit samples from the last layer's stream, float32 softmax, SPEC 7's split */
  float sd[QBNN_MAX_CLASSES], pm[QBNN_MAX_CLASSES], hsum = 0.0f;
  float(*gs)[QBNN_MAX_CLASSES] = (float(*)[QBNN_MAX_CLASSES])rt->jk; /* SPEC 7.1's group sums */
  for (int c = 0; c < nc; ++c) {
    sd[c] = sqrtf(hv[c]);
    pm[c] = 0.0f;
  }
  qbnn_stream *st = &rt->streams[layer(m, nl - 1)->core.layer_index];
  for (int k = 0; k < num_samples; ++k) {
    float lg[QBNN_MAX_CLASSES], p[QBNN_MAX_CLASSES];
    for (int c = 0; c < nc; ++c) {
      const float eps = (float)QBNN_EPS_Q[qbnn_stream_byte(st)] * (1.0f / 4096.0f);
      lg[c] = hm[c] + sd[c] * eps;
    }
    float mx = lg[0], tot = 0.0f;
    for (int c = 1; c < nc; ++c) mx = lg[c] > mx ? lg[c] : mx;
    for (int c = 0; c < nc; ++c) {
      p[c] = qexp_neg(lg[c] - mx);
      tot = tot + p[c];
    }
    for (int c = 0; c < nc; ++c) {
      p[c] = p[c] / tot;
      pm[c] = pm[c] + p[c];
    }
    qbnn__jk_add_probs(gs, k, num_samples, p, nc);
    hsum = hsum + entropy_f32(p, nc);
  }
  const float kf = (float)num_samples;
  for (int c = 0; c < nc; ++c) {
    res->mean_prob[c] = pm[c] / kf;
    if (res->mean_prob[c] > res->mean_prob[res->prediction]) res->prediction = c;
  }
  res->predictive_entropy = entropy_f32(res->mean_prob, nc);
  res->expected_entropy = hsum / kf;
  res->mutual_information = res->predictive_entropy - res->expected_entropy;
  qbnn__jk_finish_probs((const float(*)[QBNN_MAX_CLASSES])gs, pm, num_samples, nc, res);
  return QBNN_OK;
}

int qbnn__predict_mode(qbnn_runtime_t *rt, const int8_t *input, int mode, int num_samples, qbnn_result_t *res) {
  if (mode == QBNN_MODE_HYBRID && !rt->hybrid) return QBNN_RT_ERR_MODE;
  if (mode == QBNN_MODE_PFP && !rt->pfp) return QBNN_RT_ERR_MODE;
  memset(res, 0, sizeof *res);
  if (mode == QBNN_MODE_HYBRID) return predict_hybrid(rt, qbnn__run_prefix(rt, input), num_samples, res);
  if (mode == QBNN_MODE_PFP) return predict_pfp(rt, qbnn__run_prefix(rt, input), num_samples, res);
  return QBNN_RT_ERR_MODE;
}
