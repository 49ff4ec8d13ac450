/* The kernel interface of the op table (private to the runtime): every kind in qbnn_op_list.h has
     qbnn_op_<name>_prepare  -- all checks of the op's parameters (NULL included) and shapes, once in qbnn_init
                                (TFLM's Prepare); fills the scratch the op needs from its header's macros;
     qbnn_op_<name>_eval     -- the lean per-pass kernel (TFLM's Eval): int8 NHWC in -> int8 NHWC out.
   Shared pieces of the weighted ops (checks, filter rows, requantisation, SMLAD dot products) are here and in
   qbnn_weighted.c. */
#ifndef QBNN_OPS_H_
#define QBNN_OPS_H_
#include <stdint.h>
#include <string.h>

#include "qbnn_fixedpoint.h"
#include "qbnn_runtime.h"
#include "qbnn_simd.h"

#if defined(__GNUC__)
#define QBNN_ALWAYS_INLINE static inline __attribute__((always_inline))
#define QBNN_NOINLINE static __attribute__((noinline))
#else
#define QBNN_ALWAYS_INLINE static inline
#define QBNN_NOINLINE static
#endif

typedef struct { /* 64-bit counts: qbnn_init bounds them by QBNN_MAX_ARENA before any 32-bit use */
  uint64_t x_elems;      /* int16 operands of the op's input (0: none); a multiple of 4 */
  uint64_t filter_elems; /* int16 filter scratch (0: none) */
  int32_t stream;        /* the PRNG stream id of sampled (Bayesian) weights; -1: the op samples nothing */
  const qbnn_rt_layer *dense; /* the op is y = requant(W x) over its whole input with these parameters: a layer
                                 the HYBRID / PFP modes can take moments of (qbnn_plan.c checks the rest); or NULL */
} qbnn_op_needs;

/* A kernel's scratch macro (QBNN_<KIND>_X_ELEMS / _FILTER_ELEMS of its header) on op's dims and window (filter and
   stride sizes; 0 for an op without one). */
#define QBNN_SCRATCH(M, op, fh, fw, sh, sw) \
  M((op)->in.h, (op)->in.w, (op)->in.c, (op)->out.h, (op)->out.w, (op)->out.c, fh, fw, sh, sw)

typedef struct {
  qbnn_runtime_t *rt;
  int16_t *x;  /* the op's int16 operand buffer (x_elems) */
  int x_ready; /* x already holds this op's operands (the first Bayesian op's input is the same every sample) */
  int mean;    /* weights at their mu codes (qbnn_forward_mean), streams untouched */
} qbnn_op_ctx;

#define QBNN_OP(KIND, name)                                                                          \
  int qbnn_op_##name##_prepare(const qbnn_op *op, int kernel, int is_last, qbnn_op_needs *needs); \
  void qbnn_op_##name##_eval(const qbnn_op *op, const int8_t *in, int8_t *out, qbnn_op_ctx *ctx);
#include "qbnn_op_list.h"
#undef QBNN_OP

/* The op table (qbnn_plan.c): kind -> kernel, one entry per line of qbnn_op_list.h. */
typedef struct {
  int (*prepare)(const qbnn_op *op, int kernel, int is_last, qbnn_op_needs *needs);
  void (*eval)(const qbnn_op *op, const int8_t *in, int8_t *out, qbnn_op_ctx *ctx);
} qbnn_op_kernel;
extern const qbnn_op_kernel qbnn__kernels[QBNN_OP_COUNT];

/* h * w * c: exact in 64 bits (prepare / qbnn_init); the 32-bit count for kernels, once qbnn_init has bounded it
   by QBNN_MAX_TENSOR */
static inline uint64_t qbnn__elems64(qbnn_dims d) { return (uint64_t)d.h * d.w * d.c; }
static inline uint32_t qbnn__elems(qbnn_dims d) { return (uint32_t)d.h * d.w * d.c; }
/* int16 elements that fit the arena bound (every int16 scratch offset then fits an int32) */
static inline int qbnn__fits_arena16(uint64_t elems) { return elems <= QBNN_MAX_ARENA / 2u; }
static inline int qbnn__in_int8(int32_t v) { return v >= -128 && v <= 127; }

/* ---- weighted ops (qbnn_weighted.c) ----------------------------------------------------------------- */
/* Checks of a weighted op's parameters for a [rows, cols] filter: weights (Bayesian: the sampler core's checks,
   every stored code, the table for table kernels, the moment table; constant: pointer and bits), zero points,
   activation range, requantisation constants, bias bound (|bias| + max |acc| < 2^31). Sets needs->stream. */
int qbnn__check_weighted(const qbnn_rt_layer *L, uint32_t format, const uint32_t *dims, int kernel, int is_last,
                         qbnn_op_needs *needs);

/* Checks a layer's moment table (NULL is valid: HYBRID / PFP unavailable). */
int qbnn__check_moments(const qbnn_rt_layer *L, int is_last);

/* Row `row` of the filter as int16 codes into f[0..cols): sampled from `s` (Bayesian, consuming cols stream
   bytes, through the derived table unless kernel == REF), the mu codes (mean), or the constant codes. */
void qbnn__filter_row(const qbnn_rt_layer *L, uint32_t row, int kernel, int mean, qbnn_stream *s, int16_t *f);

/* w_code of an I4_FUSED byte b (mu nibble | sigma code << 4) and stream byte u through the offset table `off`:
   clamp(mu + off[k << 8 | u], -m, m), the sampler's formula (SPEC 3.3) with its product precomputed. */
static inline int32_t qbnn__offset_weight(const int8_t *off, int32_t m, uint32_t b, uint32_t u) {
  const int32_t w = (int32_t)((b & 0xFu) ^ 8u) - 8 + off[((b >> 4) << 8) | u];
  return w > m ? m : (w < -m ? -m : w);
}

/* f[i] = CODE(p[i], u) for i < n, u the next n bytes of stream s as qbnn_stream_byte gives them: the stream's
   leftover bytes, then whole PRNG words (low byte first), then the rest. One walker for every table kind. */
#define QBNN__STREAM_CODES(s, p, n, f, CODE)                                       \
  do {                                                                             \
    uint32_t i_ = 0;                                                               \
    for (; i_ < (n) && (s)->nbuf; ++i_) (f)[i_] = (int16_t)CODE((p)[i_], qbnn_stream_byte(s)); \
    uint32_t st_ = (s)->state;                                                     \
    const uint32_t words_ = ((n) - i_) / 4;                                        \
    for (uint32_t w_ = 0; w_ < words_; ++w_, i_ += 4) {                            \
      st_ = qbnn_xorshift32(st_);                                                  \
      (f)[i_] = (int16_t)CODE((p)[i_], st_ & 0xFFu);                               \
      (f)[i_ + 1] = (int16_t)CODE((p)[i_ + 1], (st_ >> 8) & 0xFFu);                \
      (f)[i_ + 2] = (int16_t)CODE((p)[i_ + 2], (st_ >> 16) & 0xFFu);               \
      (f)[i_ + 3] = (int16_t)CODE((p)[i_ + 3], st_ >> 24);                         \
    }                                                                              \
    (s)->state = st_;                                                              \
    (s)->position += 4 * words_;                                                   \
    for (; i_ < (n); ++i_) (f)[i_] = (int16_t)CODE((p)[i_], qbnn_stream_byte(s));  \
  } while (0)

/* n filter codes from I4_FUSED bytes p through the offset table, consuming n bytes of stream s. */
static inline void qbnn__offset_codes(const qbnn_rt_layer *L, const uint8_t *p, uint32_t n, qbnn_stream *s,
                                      int16_t *f) {
  const int8_t *off = L->offsets;
  const int32_t m = (1 << (L->core.weight_bits - 1)) - 1;
#define QBNN__OFFSET_CODE(b, u) qbnn__offset_weight(off, m, (b), (u))
  QBNN__STREAM_CODES(s, p, n, f, QBNN__OFFSET_CODE);
#undef QBNN__OFFSET_CODE
}

/* n filter codes from I4_FUSED bytes p through the derived table lut[b << 8 | u], consuming n bytes of stream s. */
static inline void qbnn__derived_codes(const int8_t *lut, const uint8_t *p, uint32_t n, qbnn_stream *s, int16_t *f) {
#define QBNN__DERIVED_CODE(b, u) lut[((uint32_t)(b) << 8) | (u)]
  QBNN__STREAM_CODES(s, p, n, f, QBNN__DERIVED_CODE);
#undef QBNN__DERIVED_CODE
}

/* The PACKED pair reader of qbnn_sampler.h over a layer's stored pairs from flat element `first` on. */
static inline qbnn_pairs qbnn__pairs_at(const qbnn_layer *L, uint32_t first) {
  return qbnn_pairs_at(L->mu, (uint32_t)L->weight_bits + L->sigma_bits, first);
}

/* n filter codes of PACKED pairs from flat element `first` through the pair table, consuming n bytes of s. */
void qbnn__packed_codes(const qbnn_rt_layer *L, uint32_t first, uint32_t n, qbnn_stream *s, int16_t *f);

/* One output channel's requantisation constants, loaded once per channel into locals (the kernels' int8 stores
   may alias anything, so fields read through L would be reloaded for every output). */
typedef struct {
  int32_t bias, multiplier, shift, zero_point, act_min, act_max;
  const int8_t *act_lut;
} qbnn__rq;

static inline qbnn__rq qbnn__requant_of(const qbnn_rt_layer *L, uint32_t o) {
  qbnn__rq r;
  r.bias = L->bias ? L->bias[o] : 0;
  r.multiplier = L->multipliers ? L->multipliers[o] : L->multiplier;
  r.shift = L->shifts ? L->shifts[o] : L->shift;
  r.zero_point = L->out_zero_point;
  r.act_min = L->act_min;
  r.act_max = L->act_max;
  r.act_lut = L->act_lut;
  return r;
}

/* acc + bias, MultiplyByQuantizedMultiplier, + zp_out, clamp (full_range: the int8 range, one SSAT), SoftPlus
   LUT. */
QBNN_ALWAYS_INLINE int8_t qbnn__requant_(const qbnn__rq *r, int32_t acc, const int full_range) {
  /* MultiplyByQuantizedMultiplier; the multiplier is >= 0 (qbnn__check_weighted), so SRDHM never saturates */
  const int left = r->shift > 0 ? (int)r->shift : 0, right = r->shift > 0 ? 0 : (int)-r->shift;
  int32_t q = qbnn__rounding_divide_by_pot(qbnn__srdhm_nosat((int32_t)((uint32_t)(acc + r->bias) << left), r->multiplier),
                                           right) + r->zero_point;
  if (full_range) {
    q = ssat8(q);
  } else {
    if (q < r->act_min) q = r->act_min;
    if (q > r->act_max) q = r->act_max;
  }
  if (r->act_lut) q = r->act_lut[q + 128];
  return (int8_t)q;
}

static inline int8_t qbnn__requant(const qbnn__rq *r, int32_t acc) { return qbnn__requant_(r, acc, 0); }

/* y[i * stride] = requantised acc[i] for i < n, one channel's constants in locals. */
static inline void qbnn__requant_run(const qbnn__rq *rq, const int32_t *acc, int32_t n, int8_t *y, int32_t stride) {
  const qbnn__rq r = *rq;
  if (r.act_min == -128 && r.act_max == 127) /* no fused ReLU */
    for (int32_t i = 0; i < n; ++i, y += stride) *y = qbnn__requant_(&r, acc[i], 1);
  else
    for (int32_t i = 0; i < n; ++i, y += stride) *y = qbnn__requant_(&r, acc[i], 0);
}

/* The same for output channel o of L (per tensor or per channel). */
static inline int8_t qbnn__requantize(const qbnn_rt_layer *L, int32_t acc, uint32_t o) {
  const qbnn__rq r = qbnn__requant_of(L, o);
  return qbnn__requant(&r, acc);
}

/* sum_i a[i] * b[i] + acc over int16 arrays, two products per SMLAD (unaligned word loads: fine on every
   ARMv7-M / ARMv8-M core with the default CCR.UNALIGN_TRP = 0; memcpy keeps the C defined). */
static inline uint32_t qbnn__ld32(const int16_t *p) {
  uint32_t w;
  memcpy(&w, p, 4);
  return w;
}

static inline int32_t qbnn__dot16(const int16_t *a, const int16_t *b, uint32_t n, int32_t acc) {
  uint32_t i = 0;
  for (; i + 2 <= n; i += 2) {
    acc = smlad(qbnn__ld32(a + i), qbnn__ld32(b + i), acc);
  }
  if (i < n) acc += (int32_t)a[i] * b[i];
  return acc;
}

/* int16 operands x - zp of n int8 inputs. */
static inline void qbnn__offset16(const int8_t *x, uint32_t n, int32_t zp, int16_t *out) {
  for (uint32_t i = 0; i < n; ++i) out[i] = (int16_t)(x[i] - zp);
}

/* ---- windows (convolution and pooling) ---------------------------------------------------------------- */
/* TFLite's output size for SAME / VALID given the stored padding: (in + 2 pad - f) / stride + 1 is not it;
   the op stores out dims and pad_before, and prepare checks them against these rules. */
int qbnn__check_window(qbnn_dims in, qbnn_dims out, uint32_t fh, uint32_t fw, uint32_t sh, uint32_t sw,
                       uint32_t pad_top, uint32_t pad_left);

/* The int16 operand image a convolution reads (QBNN_PADDED_ELEMS): its windows' rows and pixels from
   (-pad_top, -pad_left), holding x - zp inside the input and 0 outside (padding contributes nothing, so every
   window is whole and the kernels need no bounds), then `slack` zero elements. */
void qbnn__pad16(const qbnn_op *op, const qbnn_conv_params *P, const int8_t *in, uint32_t slack, int16_t *x);

#endif
