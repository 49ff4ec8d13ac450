/* Fused sample-and-MAC runtime; see qbnn_runtime.h and tflite_export/SPEC.md. */
#include "qbnn_runtime.h"

#include <math.h>
#include <string.h>

#include "qbnn_fixedpoint.h"
#include "qbnn_runtime_internal.h"
#include "qbnn_sampler.h"

/* The sampler core (qbnn_sampler.c, one copy of the code) is used for the streams
   (qbnn_stream_init / qbnn_stream_byte), layer checks and, in the REF kernel, every weight
   (qbnn_layer_codes + qbnn_sample_weight). The table kernels inline qbnn_xorshift32's three shifts
   and read w_code from the derived table, which the generator computes with the same formula and
   the tests check against qbnn_sample_weight for all 65,536 entries. */

#include "qbnn_simd.h"

/* ---- static buffers (the runtime's whole RAM besides the stack) ------------------------------- */
/* SIMD operands: inputs minus zero point as int16, in groups of 4 ordered c0,c2,c1,c3 so that the
   pair (c0,c2) meets the weights of random bytes 0 and 2 of a PRNG word. Layer 0's copy is built
   once per image and reused by all MC samples. The SIMD kernel reads them with LDRD, which faults
   on any address that is not a multiple of 4 (ARMv7-M/v8-M): int16 arrays are only 2-aligned (gcc
   -Os places them so), hence the unions with uint64_t (8-aligned on every ABI, C99). */
static union { int16_t v[QBNN_MAX_INPUT]; uint64_t align; } g_x0;
static union { int16_t v[QBNN_MAX_HIDDEN]; uint64_t align; } g_xh;
static union { int8_t v[2][QBNN_MAX_HIDDEN]; uint64_t align; } g_act;

/* Compile-time limits (C99 static assertions): |w| <= 127 times |x - zp| <= 255 summed over a row
   fits int32; the count sums A[c] <= 255 * classes * samples fit uint32; softmax sums of at most
   256 classes keep RoundingDivideByPOT's exponent <= 31; the SIMD kernel takes groups of 4. */
typedef char qbnn_assert_acc[(127LL * 255 * QBNN_MAX_INPUT < 0x7FFFFFFFLL) ? 1 : -1];
typedef char qbnn_assert_counts[(255LL * QBNN_MAX_CLASSES * QBNN_MAX_SAMPLES <= 0xFFFFFFFFLL) ? 1 : -1];
typedef char qbnn_assert_classes[(QBNN_MAX_CLASSES <= 256 && QBNN_MAX_CLASSES <= QBNN_MAX_HIDDEN) ? 1 : -1];
typedef char qbnn_assert_groups[(QBNN_MAX_INPUT % 4 == 0 && QBNN_MAX_HIDDEN % 4 == 0) ? 1 : -1];

uint32_t qbnn_runtime_static_bytes(void) { return sizeof g_x0 + sizeof g_xh + sizeof g_act; }

static int resolve_kernel(int kernel) {
  if (kernel == QBNN_KERNEL_AUTO) return QBNN_HAVE_DSP ? QBNN_KERNEL_SIMD : QBNN_KERNEL_LUT;
  return kernel;
}

void qbnn_seed(qbnn_runtime_t *rt, uint32_t seed) {
  if (!rt) return;
  for (uint32_t l = 0; l < QBNN_MAX_LAYERS; ++l) qbnn_stream_init(&rt->streams[l], seed, l);
}

static int in_int8(int32_t v) { return v >= -128 && v <= 127; }

/* Everything one layer's kernels rely on besides the sampler core's own checks. */
static int check_rt_layer(const qbnn_rt_layer *RL, int l, int last, int kernel) {
  const qbnn_layer *L = &RL->core;
  int err = qbnn_layer_check(L);
  if (err != QBNN_OK) return err;
  if (L->cols > (l == 0 ? QBNN_MAX_INPUT : QBNN_MAX_HIDDEN) || L->rows > QBNN_MAX_HIDDEN) return QBNN_RT_ERR_LIMITS;
  /* the table kernels need one byte per weight (I4_FUSED) and the derived table */
  if (kernel != QBNN_KERNEL_REF && (L->layout != QBNN_LAYOUT_I4_FUSED || !RL->wlut)) return QBNN_RT_ERR_KERNEL;
  /* int8 tensors: x - zp stays in [-255, 255] (int16 in the SIMD path), act_lut[q + 128] in bounds,
     and MultiplyByQuantizedMultiplier's shifts stay below 32 (TFLite: shift in [-31, 30]) */
  if (!in_int8(RL->in_zero_point) || !in_int8(RL->out_zero_point)) return QBNN_RT_ERR_RANGE;
  if (!in_int8(RL->act_min) || !in_int8(RL->act_max) || RL->act_min > RL->act_max) return QBNN_RT_ERR_RANGE;
  if (RL->multiplier < 0 || RL->shift < -31 || RL->shift > 30) return QBNN_RT_ERR_RANGE;
  /* the HYBRID / PFP moment table, when present (qbnn_modes.c) */
  err = qbnn__check_moments(RL, l == last);
  if (err != QBNN_OK) return err;
  /* every stored code: the REF kernel indexes SIGMA_Q with the stored sigma code */
  return qbnn_layer_check_codes(L);
}

int qbnn_init(qbnn_runtime_t *rt, const qbnn_model_t *model, uint32_t seed, int kernel) {
  if (!rt) return QBNN_ERR_NULL;
  memset(rt, 0, sizeof *rt); /* uninitialised until every check has passed */
  if (!model || !model->layers) return QBNN_ERR_NULL;
  if (model->num_layers < 1 || model->num_layers > QBNN_MAX_LAYERS) return QBNN_RT_ERR_LIMITS;
  if (model->num_classes < 1 || model->num_classes > QBNN_MAX_CLASSES) return QBNN_RT_ERR_LIMITS;
  if (kernel < QBNN_KERNEL_AUTO || kernel > QBNN_KERNEL_SIMD) return QBNN_RT_ERR_KERNEL;
  kernel = resolve_kernel(kernel);
  for (int l = 0; l < model->num_layers; ++l) {
    if (l > 0 && model->layers[l].core.cols != model->layers[l - 1].core.rows) return QBNN_RT_ERR_CHAIN;
    const int err = check_rt_layer(&model->layers[l], l, model->num_layers - 1, kernel);
    if (err != QBNN_OK) return err;
  }
  if (model->layers[model->num_layers - 1].core.rows != model->num_classes) return QBNN_RT_ERR_CHAIN;
  /* softmax: (uint32)diff << left_shift needs a shift below 32; diff_min <= 0 keeps the row's
     maximum in the sum (a zero sum would shift by 32 in GetReciprocal) */
  if (model->softmax_multiplier < 0 || model->softmax_left_shift < 0 || model->softmax_left_shift > 31 ||
      model->softmax_diff_min > 0)
    return QBNN_RT_ERR_RANGE;
  rt->model = model;
  rt->kernel = kernel;
  qbnn_seed(rt, seed);
  return QBNN_OK;
}

/* REF: every weight through the sampler core (any layout), no table. */
static int32_t row_ref(const qbnn_rt_layer *RL, uint32_t r, const int8_t *x, qbnn_stream *s) {
  const qbnn_layer *L = &RL->core;
  const int32_t max_code = (1 << (L->weight_bits - 1)) - 1;
  int32_t acc = 0;
  for (uint32_t c = 0; c < L->cols; ++c) {
    int32_t mu;
    uint32_t k;
    qbnn_layer_codes(L, r * L->cols + c, &mu, &k);
    const int32_t w = qbnn_sample_weight(mu, L->sigma_q[k], qbnn_stream_byte(s), max_code);
    acc += w * ((int32_t)x[c] - RL->in_zero_point);
  }
  return acc;
}

/* LUT, any stream alignment: one table load per weight. */
static int32_t row_lut(const qbnn_rt_layer *RL, const uint8_t *p, const int8_t *x, qbnn_stream *s) {
  const int8_t *lut = RL->wlut;
  int32_t acc = 0;
  for (uint32_t c = 0; c < RL->core.cols; ++c) {
    const uint32_t u = qbnn_stream_byte(s);
    acc += lut[((uint32_t)p[c] << 8) | u] * ((int32_t)x[c] - RL->in_zero_point);
  }
  return acc;
}

/* LUT, word-aligned stream and cols % 4 == 0: one PRNG word per 4 weights. */
static int32_t row_lut_words(const int8_t *lut, const uint8_t *p, const int8_t *x, int cols, int32_t zp,
                             uint32_t *state) {
  uint32_t st = *state;
  int32_t acc = 0;
  for (int c = 0; c < cols; c += 4) {
    st ^= st << 13;
    st ^= st >> 17;
    st ^= st << 5;
    acc += lut[((uint32_t)p[c] << 8) | (st & 0xFFu)] * ((int32_t)x[c] - zp);
    acc += lut[((uint32_t)p[c + 1] << 8) | ((st >> 8) & 0xFFu)] * ((int32_t)x[c + 1] - zp);
    acc += lut[((uint32_t)p[c + 2] << 8) | ((st >> 16) & 0xFFu)] * ((int32_t)x[c + 2] - zp);
    acc += lut[((uint32_t)p[c + 3] << 8) | (st >> 24)] * ((int32_t)x[c + 3] - zp);
  }
  *state = st;
  return acc;
}

/* SIMD: 4 weights per PRNG word. Table indices for bytes (0,2) and (1,3) are formed two at a time
   (packed byte in bits 8-15, random byte in bits 0-7 of each halfword: one AND + one UXTAB16 per
   pair), looked up, packed into int16 pairs and multiplied with two SMLADs. On DSP targets the loop
   is hand-scheduled (23 instructions per 4 weights); elsewhere the same steps run in C. */
static int32_t row_simd(const int8_t *lut, const uint8_t *p, const int16_t *xi, int cols, uint32_t *state) {
  uint32_t st = *state;
  int32_t acc = 0;
  const uint32_t *pw = (const uint32_t *)(const void *)p;
  const uint32_t *pend = pw + cols / 4;
  const uint32_t *xw = (const uint32_t *)(const void *)xi;
  if (pw == pend) return 0;
#if QBNN_HAVE_DSP
  uint32_t t0, t1, t2, t3;
  const uint32_t mask = 0xFF00FF00u;
  __asm volatile(
      "1:\n\t"
      "ldr     %[t0], [%[pw]], #4\n\t"
      "eor     %[st], %[st], %[st], lsl #13\n\t"
      "eor     %[st], %[st], %[st], lsr #17\n\t"
      "eor     %[st], %[st], %[st], lsl #5\n\t"
      "and     %[t1], %[t0], %[mask]\n\t"
      "and     %[t0], %[mask], %[t0], lsl #8\n\t"
      "uxtab16 %[t0], %[t0], %[st]\n\t"
      "uxtab16 %[t1], %[t1], %[st], ror #8\n\t"
      "uxth    %[t2], %[t0]\n\t"
      "lsrs    %[t0], %[t0], #16\n\t"
      "ldrsb   %[t2], [%[lut], %[t2]]\n\t"
      "ldrsb   %[t0], [%[lut], %[t0]]\n\t"
      "pkhbt   %[t2], %[t2], %[t0], lsl #16\n\t"
      "uxth    %[t3], %[t1]\n\t"
      "lsrs    %[t1], %[t1], #16\n\t"
      "ldrsb   %[t3], [%[lut], %[t3]]\n\t"
      "ldrsb   %[t1], [%[lut], %[t1]]\n\t"
      "pkhbt   %[t3], %[t3], %[t1], lsl #16\n\t"
      "ldrd    %[t0], %[t1], [%[xw]], #8\n\t"
      "smlad   %[acc], %[t2], %[t0], %[acc]\n\t"
      "smlad   %[acc], %[t3], %[t1], %[acc]\n\t"
      "cmp     %[pw], %[pend]\n\t"
      "bne     1b\n\t"
      : [acc] "+&r"(acc), [st] "+&r"(st), [pw] "+&r"(pw), [xw] "+&r"(xw), [t0] "=&r"(t0), [t1] "=&r"(t1),
        [t2] "=&r"(t2), [t3] "=&r"(t3)
      : [lut] "r"(lut), [pend] "r"(pend), [mask] "r"(mask)
      : "cc", "memory");
#else
  while (pw != pend) {
    st ^= st << 13;
    st ^= st >> 17;
    st ^= st << 5;
    const uint32_t pk = *pw++;
    const uint32_t ie = uxtab16((pk << 8) & 0xFF00FF00u, st);
    const uint32_t io = uxtab16_ror8(pk & 0xFF00FF00u, st);
    const uint32_t we = pkhbt16((uint32_t)(int32_t)lut[ie & 0xFFFFu], (uint32_t)(int32_t)lut[ie >> 16]);
    const uint32_t wo = pkhbt16((uint32_t)(int32_t)lut[io & 0xFFFFu], (uint32_t)(int32_t)lut[io >> 16]);
    acc = smlad(we, xw[0], acc);
    acc = smlad(wo, xw[1], acc);
    xw += 2;
  }
#endif
  *state = st;
  return acc;
}

static void interleave_offset(const int8_t *x, int n, int32_t zp, int16_t *out) {
  for (int c = 0; c < n; c += 4) {
    out[c] = (int16_t)(x[c] - zp);
    out[c + 1] = (int16_t)(x[c + 2] - zp);
    out[c + 2] = (int16_t)(x[c + 1] - zp);
    out[c + 3] = (int16_t)(x[c + 3] - zp);
  }
}

static int8_t requantize(const qbnn_rt_layer *L, int32_t acc) {
  int32_t q = qbnn_multiply_by_quantized_multiplier(acc, L->multiplier, (int)L->shift) + L->out_zero_point;
  if (q < L->act_min) q = L->act_min;
  if (q > L->act_max) q = L->act_max;
  if (L->act_lut) q = L->act_lut[q + 128];
  return (int8_t)q;
}

/* One layer: rows of fused sampling + MAC. x0_ready: g_x0 already holds layer 0's SIMD operands.
   The word-at-a-time kernels need the stream at a word boundary (nbuf == 0) and C % 4 == 0, which
   holds for every sample when R*C % 4 == 0; otherwise the byte-wise kernels run (same results). */
static void run_layer(qbnn_runtime_t *rt, int l, const int8_t *x, int8_t *y, int x0_ready) {
  const qbnn_rt_layer *RL = &rt->model->layers[l];
  const uint32_t rows = RL->core.rows, cols = RL->core.cols;
  qbnn_stream *s = &rt->streams[l];
  const uint8_t *p = RL->core.mu;
  const int aligned = (cols & 3u) == 0 && s->nbuf == 0;
  if (rt->kernel == QBNN_KERNEL_REF) {
    for (uint32_t r = 0; r < rows; ++r) y[r] = requantize(RL, row_ref(RL, r, x, s));
  } else if (!aligned) {
    for (uint32_t r = 0; r < rows; ++r, p += cols) y[r] = requantize(RL, row_lut(RL, p, x, s));
  } else {
    /* SIMD reads the stored bytes a word at a time: 4-aligned rows (the generator aligns them to 16;
       a caller's unaligned copy takes the byte-wise word kernel, same results) */
    if (rt->kernel == QBNN_KERNEL_SIMD && ((uintptr_t)p & 3u) == 0) {
      int16_t *xi = l == 0 ? g_x0.v : g_xh.v;
      if (!(l == 0 && x0_ready)) interleave_offset(x, (int)cols, RL->in_zero_point, xi);
      for (uint32_t r = 0; r < rows; ++r, p += cols)
        y[r] = requantize(RL, row_simd(RL->wlut, p, xi, (int)cols, &s->state));
    } else {
      for (uint32_t r = 0; r < rows; ++r, p += cols)
        y[r] = requantize(RL, row_lut_words(RL->wlut, p, x, (int)cols, RL->in_zero_point, &s->state));
    }
    s->position += rows * cols; /* whole words consumed: nbuf stays 0 */
    s->buf = 0;
  }
}

/* Layers first..end from input x (layer `first`'s input), then the softmax. */
static void forward_from(qbnn_runtime_t *rt, int first, const int8_t *x, int8_t *softmax_out, int x0_ready) {
  const qbnn_model_t *m = rt->model;
  int8_t *y = g_act.v[first & 1];
  for (int l = first; l < m->num_layers; ++l) {
    run_layer(rt, l, x, y, x0_ready);
    x = y;
    y = g_act.v[(l + 1) & 1];
  }
  qbnn_softmax_int8(x, m->num_classes, m->softmax_multiplier, m->softmax_left_shift, m->softmax_diff_min,
                    softmax_out);
}

static void forward(qbnn_runtime_t *rt, const int8_t *input, int8_t *softmax_out, int x0_ready) {
  forward_from(rt, 0, input, softmax_out, x0_ready);
}

int qbnn__run_tail(qbnn_runtime_t *rt, int first_layer, const int8_t *in, int8_t *softmax_out) {
  if (!rt || !rt->model || !in || !softmax_out) return QBNN_ERR_NULL;
  if (first_layer < 0 || first_layer > rt->model->num_layers) return QBNN_RT_ERR_LIMITS;
  /* `in` may be the caller's buffer: copy it out of g_act's ping-pong slot the first layer writes */
  if (in == g_act.v[first_layer & 1]) {
    memcpy(g_act.v[(first_layer + 1) & 1], in, QBNN_MAX_HIDDEN);
    in = g_act.v[(first_layer + 1) & 1];
  }
  forward_from(rt, first_layer, in, softmax_out, 0);
  return QBNN_OK;
}

int qbnn_forward(qbnn_runtime_t *rt, const int8_t *input, int8_t *softmax_out) {
  if (!rt || !input || !softmax_out) return QBNN_ERR_NULL;
  if (!rt->model) return QBNN_RT_ERR_UNINIT;
  forward(rt, input, softmax_out, 0);
  return QBNN_OK;
}

static float entropy_of_counts(const uint32_t *counts, int n) {
  uint32_t total = 0;
  for (int c = 0; c < n; ++c) total += counts[c];
  float h = 0.0f;
  for (int c = 0; c < n; ++c) {
    if (counts[c]) {
      const float p = (float)counts[c] / (float)total;
      h -= p * logf(p);
    }
  }
  return h;
}

void qbnn__accumulate(const int8_t *softmax_codes, int num_classes, uint32_t *counts) {
  for (int c = 0; c < num_classes; ++c) counts[c] += (uint32_t)((int32_t)softmax_codes[c] + 128);
}

float qbnn__sample_entropy(const int8_t *softmax_codes, int num_classes) {
  uint32_t counts[QBNN_MAX_CLASSES];
  for (int c = 0; c < num_classes; ++c) counts[c] = (uint32_t)((int32_t)softmax_codes[c] + 128);
  return entropy_of_counts(counts, num_classes);
}

void qbnn__finish(const uint32_t *counts, int num_samples, int nc, const float *entropy_sum, qbnn_result_t *res) {
  uint32_t total = 0;
  if (res->counts != counts) memcpy(res->counts, counts, (size_t)nc * sizeof counts[0]);
  res->prediction = 0;
  for (int c = 0; c < nc; ++c) total += res->counts[c];
  for (int c = 0; c < nc; ++c) {
    res->mean_prob[c] = (float)res->counts[c] / (float)total;
    if (res->counts[c] > res->counts[res->prediction]) res->prediction = c;
  }
  res->predictive_entropy = entropy_of_counts(res->counts, nc);
  res->expected_entropy = (entropy_sum[0] + entropy_sum[1]) / (float)num_samples;
  res->mutual_information = res->predictive_entropy - res->expected_entropy;
}

int qbnn_predict(qbnn_runtime_t *rt, const int8_t *input, int mode, int num_samples, qbnn_result_t *res) {
  if (!rt || !input || !res) return QBNN_ERR_NULL;
  const qbnn_model_t *m = rt->model;
  if (!m) return QBNN_RT_ERR_UNINIT;
  if (mode != QBNN_MODE_MC && mode != QBNN_MODE_HYBRID && mode != QBNN_MODE_PFP) return QBNN_RT_ERR_MODE;
  if (num_samples < 1 || num_samples > QBNN_MAX_SAMPLES) return QBNN_RT_ERR_SAMPLES;
  if (mode != QBNN_MODE_MC) return qbnn__predict_mode(rt, input, mode, num_samples, res);
  const int nc = m->num_classes;
  memset(res, 0, sizeof *res);
  int x0_ready = 0;
  if (rt->kernel == QBNN_KERNEL_SIMD && (m->layers[0].core.cols & 3u) == 0) {
    interleave_offset(input, (int)m->layers[0].core.cols, m->layers[0].in_zero_point, g_x0.v);
    x0_ready = 1;
  }
  /* float only (no soft-double code on single-precision FPUs); Neumaier-compensated so that the
     sum of S entropies keeps float32 accuracy for any S (SPEC 7: within 1e-5 nats) */
  float entropy_sum[2] = {0.0f, 0.0f};
  for (int s = 0; s < num_samples; ++s) {
    int8_t q[QBNN_MAX_CLASSES];
    forward(rt, input, q, x0_ready);
    qbnn__accumulate(q, nc, res->counts);
    qbnn__add_entropy(entropy_sum, qbnn__sample_entropy(q, nc));
  }
  qbnn__finish(res->counts, num_samples, nc, entropy_sum, res);
  return QBNN_OK;
}
