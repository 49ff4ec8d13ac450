/* FULLY_CONNECTED: y[o] = requant(sum_i w[o, i] (x[i] - zp_in)) with weights [rows = out, cols = in].
   Bayesian weights are sampled as they are multiplied (fused; SPEC 3: one stream byte per weight in row-major
   order); constant weights (int8 / int4) and the mean pass go through one filter row of scratch. */
#include "qbnn_op_fully_connected.h"

#include "qbnn_ops.h"

int qbnn_op_fully_connected_prepare(const qbnn_op *op, int kernel, int is_last, qbnn_op_needs *needs) {
  const qbnn_rt_layer *L = (const qbnn_rt_layer *)op->params;
  const uint64_t cols = qbnn__elems64(op->in); /* <= QBNN_MAX_TENSOR (qbnn_init) */
  if (op->out.h != 1 || op->out.w != 1) return QBNN_RT_ERR_CHAIN;
  if (cols > 0x7FFFFFFFu) return QBNN_RT_ERR_LIMITS;
  const uint32_t dims[2] = {op->out.c, (uint32_t)cols};
  const int err = qbnn__check_weighted(L, QBNN_FILTER_OI, dims, kernel, is_last, needs);
  if (err != QBNN_OK) return err;
  needs->x_elems = QBNN_SCRATCH(QBNN_FULLY_CONNECTED_X_ELEMS, op, 0, 0, 0, 0);
  needs->filter_elems = QBNN_SCRATCH(QBNN_FULLY_CONNECTED_FILTER_ELEMS, op, 0, 0, 0, 0);
  needs->dense = L;
  return QBNN_OK;
}

/* plain (per tensor, no bias: the Bayesian layers of SPEC v1): one set of constants for every row, r0 */
QBNN_ALWAYS_INLINE int8_t requant(const qbnn_rt_layer *L, const qbnn__rq *r0, int32_t acc, uint32_t r, const int plain) {
  return plain ? qbnn__requant(r0, acc) : qbnn__requantize(L, acc, r);
}

/* REF: every weight through the sampler core (any layout), no table. */
static int32_t row_ref(const qbnn_rt_layer *L, uint32_t r, const int8_t *x, qbnn_stream *s) {
  const int32_t max_code = (1 << (L->core.weight_bits - 1)) - 1;
  int32_t acc = 0;
  for (uint32_t c = 0; c < L->core.cols; ++c) {
    int32_t mu;
    uint32_t k;
    qbnn_layer_codes(&L->core, r * L->core.cols + c, &mu, &k);
    const int32_t w = qbnn_sample_weight(mu, L->core.sigma_q[k], qbnn_stream_byte(s), max_code);
    acc += w * ((int32_t)x[c] - L->in_zero_point);
  }
  return acc;
}

/* Offset table (4 KB instead of the derived 64 KB): the row's codes into the filter scratch, then SMLAD pairs. */
static int32_t row_offsets(const qbnn_rt_layer *L, const uint8_t *p, const int16_t *x16, qbnn_stream *s, int16_t *f) {
  qbnn__offset_codes(L, p, L->core.cols, s, f);
  return qbnn__dot16(f, x16, L->core.cols, 0);
}

/* LUT, any stream alignment: one table load per weight. */
static int32_t row_lut(const qbnn_rt_layer *L, const uint8_t *p, const int8_t *x, qbnn_stream *s) {
  const int8_t *lut = L->wlut;
  int32_t acc = 0;
  for (uint32_t c = 0; c < L->core.cols; ++c) {
    const uint32_t u = qbnn_stream_byte(s);
    acc += lut[((uint32_t)p[c] << 8) | u] * ((int32_t)x[c] - L->in_zero_point);
  }
  return acc;
}

/* PACKED pairs through the pair table: the portable loop of every target (a table read per weight). */
static int32_t row_packed(const qbnn_rt_layer *L, uint32_t r, const int8_t *x, qbnn_stream *s) {
  const int8_t *lut = L->wlut;
  qbnn_pairs q = qbnn__pairs_at(&L->core, r * L->core.cols);
  int32_t acc = 0;
  for (uint32_t c = 0; c < L->core.cols; ++c)
    acc += lut[(qbnn_pair_next(&q) << 8) | qbnn_stream_byte(s)] * ((int32_t)x[c] - L->in_zero_point);
  return acc;
}

/* PACKED, word-aligned stream: the n weights (n % 4 == 0) from flat element `first` on, one PRNG word per 4. */
static int32_t row_packed_words(const qbnn_rt_layer *L, uint32_t first, uint32_t n, const int8_t *x,
                                uint32_t *state) {
  const int8_t *lut = L->wlut;
  const int32_t zp = L->in_zero_point;
  qbnn_pairs q = qbnn__pairs_at(&L->core, first);
  uint32_t st = *state;
  int32_t acc = 0;
  for (uint32_t c = 0; c < n; c += 4) {
    st = qbnn_xorshift32(st);
    acc += lut[(qbnn_pair_next(&q) << 8) | (st & 0xFFu)] * ((int32_t)x[c] - zp);
    acc += lut[(qbnn_pair_next(&q) << 8) | ((st >> 8) & 0xFFu)] * ((int32_t)x[c + 1] - zp);
    acc += lut[(qbnn_pair_next(&q) << 8) | ((st >> 16) & 0xFFu)] * ((int32_t)x[c + 2] - zp);
    acc += lut[(qbnn_pair_next(&q) << 8) | (st >> 24)] * ((int32_t)x[c + 3] - zp);
  }
  *state = st;
  return acc;
}

/* PACKED with p = 4 (two pairs per byte, low nibble first), word-aligned stream and cols % 4 == 0. */
static int32_t row_packed4_words(const int8_t *lut, const uint8_t *q, const int8_t *x, uint32_t cols, int32_t zp,
                                 uint32_t *state) {
  uint32_t st = *state;
  int32_t acc = 0;
  for (uint32_t c = 0; c < cols; c += 4, q += 2) {
    st = qbnn_xorshift32(st);
    const uint32_t b0 = q[0], b1 = q[1];
    acc += lut[((b0 & 0xFu) << 8) | (st & 0xFFu)] * ((int32_t)x[c] - zp);
    acc += lut[((b0 >> 4) << 8) | ((st >> 8) & 0xFFu)] * ((int32_t)x[c + 1] - zp);
    acc += lut[((b1 & 0xFu) << 8) | ((st >> 16) & 0xFFu)] * ((int32_t)x[c + 2] - zp);
    acc += lut[((b1 >> 4) << 8) | (st >> 24)] * ((int32_t)x[c + 3] - zp);
  }
  *state = st;
  return acc;
}

/* PACKED p = 4, fast kernel: 8 weights (a word of 8 nibble pairs, two PRNG words) per iteration, x as
   int16 in column order. Per weight one AND with a shifted operand puts the pair in bits 8-11 (m = 0xF00), one UXTAB
   adds the stream byte (the index pair << 8 | u), one LDRSB reads the table and one SMLABB / SMLABT multiplies it
   with its input halfword: 43 instructions per 8 weights on DSP targets, 55 on Thumb-2 without DSP; elsewhere the
   same steps in C. */
#if QBNN_HAVE_DSP
#define QBNN_PACKED_ASM 1
#define QBNN__LOAD_X "ldrd    %[x0], %[x1], [%[xw]], #8\n\t"
#define QBNN__P4_WEIGHT(T, SH, ROR, LSB, XR, HALF)              \
  "and     %[" T "], %[m], %[w]" SH "\n\t"                      \
  "uxtab   %[" T "], %[" T "], %[st]" ROR "\n\t"                \
  "ldrsb   %[" T "], [%[lut], %[" T "]]\n\t"                    \
  "smlab" HALF " %[acc], %[" T "], %[" XR "], %[acc]\n\t"
#elif (defined(__ARM_ARCH_7M__) || defined(__ARM_ARCH_8M_MAIN__)) && defined(__GNUC__)
/* Thumb-2 without DSP (Cortex-M3, M33 built without it): UBFX + ORR for UXTAB, LDRSH + MLA for SMLABB (x0 the
   scratch register): 6 instructions per weight */
#define QBNN_PACKED_ASM 1
#define QBNN__LOAD_X ""
#define QBNN__P4_WEIGHT(T, SH, ROR, LSB, XR, HALF)              \
  "and     %[" T "], %[m], %[w]" SH "\n\t"                      \
  "ubfx    %[x0], %[st], #" LSB ", #8\n\t"                     \
  "orr     %[" T "], %[" T "], %[x0]\n\t"                       \
  "ldrsb   %[" T "], [%[lut], %[" T "]]\n\t"                    \
  "ldrsh   %[x0], [%[xw]], #2\n\t"                              \
  "mla     %[acc], %[" T "], %[x0], %[acc]\n\t"
#else
#define QBNN_PACKED_ASM 0
#endif
#if QBNN_PACKED_ASM
#define QBNN__P4_XORSHIFT                       \
  "eor     %[st], %[st], %[st], lsl #13\n\t"    \
  "eor     %[st], %[st], %[st], lsr #17\n\t"    \
  "eor     %[st], %[st], %[st], lsl #5\n\t"
#endif

#if !QBNN_HAVE_MVE
static int32_t row_packed4_simd(const int8_t *lut, const uint8_t *q, const int16_t *xi, uint32_t words,
                                uint32_t *state) {
  uint32_t st = *state;
  int32_t acc = 0;
  const uint32_t *qw = (const uint32_t *)(const void *)q;
  const uint32_t *const qend = qw + words;
  if (qw == qend) return 0;
#if QBNN_PACKED_ASM
  uint32_t w, x0, x1, t0, t1;
  const uint32_t m = 0xF00u;
  __asm volatile(
      "1:\n\t"
      "ldr     %[w], [%[qw]], #4\n\t" QBNN__P4_XORSHIFT
      QBNN__LOAD_X
      QBNN__P4_WEIGHT("t0", ", lsl #8", "", "0", "x0", "b")
      QBNN__P4_WEIGHT("t1", ", lsl #4", ", ror #8", "8", "x0", "t")
      QBNN__P4_WEIGHT("t0", "", ", ror #16", "16", "x1", "b")
      QBNN__P4_WEIGHT("t1", ", lsr #4", ", ror #24", "24", "x1", "t") QBNN__P4_XORSHIFT
      QBNN__LOAD_X
      QBNN__P4_WEIGHT("t0", ", lsr #8", "", "0", "x0", "b")
      QBNN__P4_WEIGHT("t1", ", lsr #12", ", ror #8", "8", "x0", "t")
      QBNN__P4_WEIGHT("t0", ", lsr #16", ", ror #16", "16", "x1", "b")
      QBNN__P4_WEIGHT("t1", ", lsr #20", ", ror #24", "24", "x1", "t")
      "cmp     %[qw], %[qend]\n\t"
      "bne     1b\n\t"
      : [acc] "+&r"(acc), [st] "+&r"(st), [qw] "+&r"(qw), [xw] "+&r"(xi), [w] "=&r"(w), [x0] "=&r"(x0),
        [x1] "=&r"(x1), [t0] "=&r"(t0), [t1] "=&r"(t1)
      : [lut] "r"(lut), [qend] "r"(qend), [m] "r"(m)
      : "cc", "memory");
#else
  while (qw != qend) {
    const uint32_t w = *qw++;
    for (uint32_t h = 0; h < 32; h += 16, xi += 4) {
      st = qbnn_xorshift32(st);
      for (uint32_t j = 0; j < 4; ++j) acc += lut[(((w >> (h + 4 * j)) & 0xFu) << 8) | ((st >> (8 * j)) & 0xFFu)] * xi[j];
    }
  }
#endif
  *state = st;
  return acc;
}

/* A row of row_packed4_simd: 4-aligned rows whole, rows at 2 mod 4 (cols % 8 == 4) with their first 4 weights,
   a last odd group of 4 and rows at odd addresses (a caller's unaligned copy) through the portable loop. */
static int32_t row_packed4(const int8_t *lut, const uint8_t *q, const int8_t *x, const int16_t *xi, uint32_t cols,
                           int32_t zp, uint32_t *st) {
  if ((uintptr_t)q & 1u) return row_packed4_words(lut, q, x, cols, zp, st);
  uint32_t c = 0;
  int32_t acc = 0;
  if ((uintptr_t)q & 2u) {
    acc = row_packed4_words(lut, q, x, 4, zp, st);
    c = 4;
  }
  const uint32_t words = (cols - c) / 8;
  acc += row_packed4_simd(lut, q + c / 2, xi + c, words, st);
  c += 8 * words;
  if (c < cols) acc += row_packed4_words(lut, q + c / 2, x + c, 4, zp, st);
  return acc;
}
#endif

/* PACKED p = 3, 5, 6, 7, fast kernel: whole groups of 8 weights (p bytes) from a group boundary: pairs
   0-3 from the word at the group's first byte, pairs 4-7 from the word at byte 4p / 8 (bit 4p % 8 on), both
   unaligned LDRs (ARMv7-M and up; CCR.UNALIGN_TRP clear, its reset value) that read up to 2 bytes past the group:
   the caller takes the tensor's last group through the bit reservoir. Then row_packed4_simd's four instructions per weight with the
   shifts of each pair to bits 8 .. 8 + p - 1: 44 instructions per 8 weights on DSP targets, 56 on Thumb-2 without
   DSP; elsewhere C. */
#if QBNN_PACKED_ASM
#define QBNN__PG_ASM(P, OFF, S0, S1, S2, S3, T0, T1, T2, T3)                                                         \
  __asm volatile("1:\n\t"                                                                                           \
                 "ldr     %[w], [%[q]], #" #P "\n\t" QBNN__P4_XORSHIFT                                              \
                 QBNN__LOAD_X QBNN__P4_WEIGHT("t0", S0, "", "0", "x0", "b")                   \
                     QBNN__P4_WEIGHT("t1", S1, ", ror #8", "8", "x0", "t") QBNN__P4_WEIGHT("t0", S2, ", ror #16", "16", "x1", "b") \
                         QBNN__P4_WEIGHT("t1", S3, ", ror #24", "24", "x1", "t")                                          \
                 "ldr     %[w], [%[q], #-" #P " + " #OFF "]\n\t" QBNN__P4_XORSHIFT                                  \
                 QBNN__LOAD_X QBNN__P4_WEIGHT("t0", T0, "", "0", "x0", "b")                   \
                     QBNN__P4_WEIGHT("t1", T1, ", ror #8", "8", "x0", "t") QBNN__P4_WEIGHT("t0", T2, ", ror #16", "16", "x1", "b") \
                         QBNN__P4_WEIGHT("t1", T3, ", ror #24", "24", "x1", "t")                                          \
                 "cmp     %[q], %[qend]\n\t"                                                                        \
                 "bne     1b\n\t"                                                                                   \
                 : [acc] "+&r"(acc), [st] "+&r"(st), [q] "+&r"(q), [xw] "+&r"(xi), [w] "=&r"(w), [x0] "=&r"(x0),     \
                   [x1] "=&r"(x1), [t0] "=&r"(t0), [t1] "=&r"(t1)                                                   \
                 : [lut] "r"(lut), [qend] "r"(qend), [m] "r"(m)                                                     \
                 : "cc", "memory")
#endif

static int32_t row_packed_groups(const int8_t *lut, const uint8_t *q, const int16_t *xi, uint32_t groups, uint32_t p,
                                 uint32_t *state) {
  uint32_t st = *state;
  int32_t acc = 0;
  const uint8_t *const qend = q + groups * p;
  if (groups == 0) return 0;
#if QBNN_PACKED_ASM
  uint32_t w, x0, x1, t0, t1;
  const uint32_t m = ((1u << p) - 1u) << 8;
  switch (p) {
    case 3:
      QBNN__PG_ASM(3, 1, ", lsl #8", ", lsl #5", ", lsl #2", ", lsr #1", ", lsl #4", ", lsl #1", ", lsr #2", ", lsr #5");
      break;
    case 5:
      QBNN__PG_ASM(5, 2, ", lsl #8", ", lsl #3", ", lsr #2", ", lsr #7", ", lsl #4", ", lsr #1", ", lsr #6", ", lsr #11");
      break;
    case 6:
      QBNN__PG_ASM(6, 3, ", lsl #8", ", lsl #2", ", lsr #4", ", lsr #10", ", lsl #8", ", lsl #2", ", lsr #4", ", lsr #10");
      break;
    default: /* 7 */
      QBNN__PG_ASM(7, 3, ", lsl #8", ", lsl #1", ", lsr #6", ", lsr #13", ", lsl #4", ", lsr #3", ", lsr #10", ", lsr #17");
      break;
  }
#else
  const uint32_t mask = (1u << p) - 1u;
  for (; q != qend; q += p) {
    for (uint32_t h = 0; h < 2; ++h, xi += 4) {
      const uint8_t *b = q + h * (4 * p / 8);
      const uint32_t w = ((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24) >>
                         (h * (4 * p % 8));
      st = qbnn_xorshift32(st);
      for (uint32_t j = 0; j < 4; ++j) acc += lut[(((w >> (p * j)) & mask) << 8) | ((st >> (8 * j)) & 0xFFu)] * xi[j];
    }
  }
#endif
  *state = st;
  return acc;
}

#if QBNN_HAVE_MVE
/* The next 4 xorshift words (a, b, c, st: 16 stream bytes) into q0, byte j of q0 = stream byte j. */
#define QBNN__MVE_STREAM16                         \
  "eor     %[a], %[st], %[st], lsl #13\n\t"       \
  "eor     %[a], %[a], %[a], lsr #17\n\t"         \
  "eor     %[a], %[a], %[a], lsl #5\n\t"          \
  "eor     %[b], %[a], %[a], lsl #13\n\t"         \
  "eor     %[b], %[b], %[b], lsr #17\n\t"         \
  "eor     %[b], %[b], %[b], lsl #5\n\t"          \
  "eor     %[c], %[b], %[b], lsl #13\n\t"         \
  "eor     %[c], %[c], %[c], lsr #17\n\t"         \
  "eor     %[c], %[c], %[c], lsl #5\n\t"          \
  "eor     %[st], %[c], %[c], lsl #13\n\t"        \
  "eor     %[st], %[st], %[st], lsr #17\n\t"      \
  "eor     %[st], %[st], %[st], lsl #5\n\t"       \
  "vmov    q0[2], q0[0], %[a], %[c]\n\t"          \
  "vmov    q0[3], q0[1], %[b], %[st]\n\t"
/* Gathers the codes of table indices q0 (even weights) and q2 (odd), multiplies them with the next 16 operands
   (xw, mve_operands' order) into acc, and loops. */
#define QBNN__MVE_GATHER_MAC                       \
  "vldrb.s16 q1, [%[lut], q0]\n\t"                \
  "vldrb.s16 q3, [%[lut], q2]\n\t"                \
  "vldrh.u16 q0, [%[xw]], #16\n\t"                \
  "vldrh.u16 q2, [%[xw]], #16\n\t"                \
  "vmladava.s16 %[acc], q1, q0\n\t"               \
  "vmladava.s16 %[acc], q3, q2\n\t"               \
  "le      lr, 1b\n\t"
/* PACKED p = 4 through Helium: 16 weights (8 bytes) per iteration, 26 instructions, row_mve's scheme with the 8
   bytes widened to halfwords h = n_even | n_odd << 4 (VLDRB.U16): (h << 4) keeps n_odd in bits 8-11 for the odd
   indices (VSRI adds u_odd), h << 8 with bits 12-15 cleared (VBIC) gives the even ones. */
static int32_t row_packed4_mve(const int8_t *lut, const uint8_t *q, const int16_t *xi, uint32_t blocks,
                               uint32_t *state) {
  register int32_t acc __asm("r4") = 0; /* VMLADAVA's accumulator: an even register */
  uint32_t st = *state, a, b, c;
  if (blocks == 0) return 0;
  __asm volatile(
      "dls     lr, %[n]\n"
      "1:\n\t"
      QBNN__MVE_STREAM16
      "vldrb.u16 q1, [%[pw]], #8\n\t"
      "vshl.i16 q2, q1, #4\n\t"
      "vsri.16 q2, q0, #8\n\t"
      "vsli.16 q0, q1, #8\n\t"
      "vbic.i16 q0, #0xf000\n\t"
      QBNN__MVE_GATHER_MAC
      : [acc] "+&r"(acc), [st] "+&r"(st), [pw] "+&l"(q), [xw] "+&r"(xi), [a] "=&r"(a), [b] "=&r"(b), [c] "=&r"(c)
      : [lut] "r"(lut), [n] "r"(blocks)
      : "d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7", "lr", "memory");
  *state = st;
  return acc;
}
#endif

/* LUT, word-aligned stream and cols % 4 == 0: one PRNG word per 4 weights. */
static int32_t row_lut_words(const int8_t *lut, const uint8_t *p, const int8_t *x, int cols, int32_t zp,
                             uint32_t *state) {
  uint32_t st = *state;
  int32_t acc = 0;
  for (int c = 0; c < cols; c += 4) {
    st = qbnn_xorshift32(st);
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
QBNN_ALWAYS_INLINE int32_t row_simd(const int8_t *lut, const uint8_t *p, const int16_t *xi, int cols, uint32_t *state) {
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
    st = qbnn_xorshift32(st);
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

#if QBNN_HAVE_MVE
/* Helium: 16 weights per iteration, 25 instructions. The xorshift recurrence is serial (SPEC 3.1 fixes the byte
   order), so its 4 words per block run in scalar registers (3 EORs with shifted operands each) and move into one
   vector (2 VMOVs: 16 stream bytes u). With the 16 packed bytes b (one VLDRB), VSLI.16 / VSRI.16 form the 8 table
   indices b << 8 | u of the even and the odd weights, two gathers (VLDRB.S16 with 16-bit offsets) read the codes
   and two VMLADAVA.S16 multiply them with the inputs (mve_operands' even / odd order) into the sum. */
static int32_t row_mve(const int8_t *lut, const uint8_t *p, const int16_t *xi, uint32_t blocks, uint32_t *state) {
  register int32_t acc __asm("r4") = 0; /* VMLADAVA's accumulator: an even register */
  uint32_t st = *state, a, b, c;
  if (blocks == 0) return 0;
  __asm volatile(
      "dls     lr, %[n]\n"
      "1:\n\t"
      QBNN__MVE_STREAM16
      "vldrb.u8 q1, [%[pw]], #16\n\t"
      "vmov    q2, q1\n\t"
      "vsri.16 q2, q0, #8\n\t"
      "vsli.16 q0, q1, #8\n\t"
      QBNN__MVE_GATHER_MAC
      : [acc] "+&r"(acc), [st] "+&r"(st), [pw] "+&r"(p), [xw] "+&r"(xi), [a] "=&r"(a), [b] "=&r"(b), [c] "=&r"(c)
      : [lut] "r"(lut), [n] "r"(blocks)
      : "d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7", "lr", "memory");
  *state = st;
  return acc;
}

/* inputs minus zero point as int16 for row_mve: per block of 16 the even then the odd columns; the columns past
   the last whole block (a multiple of 4) in row_simd's order */
static void mve_operands(const int8_t *x, uint32_t n, int32_t zp, int16_t *out) {
  static const uint8_t order16[16] = {0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15}, order4[4] = {0, 2, 1, 3};
  uint32_t c = 0;
  for (; c + 16 <= n; c += 16)
    for (uint32_t j = 0; j < 16; ++j) out[c + j] = (int16_t)(x[c + order16[j]] - zp);
  for (; c < n; c += 4)
    for (uint32_t j = 0; j < 4; ++j) out[c + j] = (int16_t)(x[c + order4[j]] - zp);
}

/* PACKED p = 4: the n columns (a multiple of 4) past row_packed4_mve's whole blocks, x in mve_operands' order for
   them (columns 0, 2, 1, 3 of each 4) */
static int32_t row_packed4_mve_tail(const int8_t *lut, const uint8_t *q, const int16_t *xi, uint32_t n,
                                    uint32_t *state) {
  static const uint8_t at[4] = {0, 2, 1, 3};
  uint32_t st = *state;
  int32_t acc = 0;
  for (uint32_t c = 0; c < n; c += 4, q += 2) {
    st = qbnn_xorshift32(st);
    for (uint32_t j = 0; j < 4; ++j)
      acc += lut[(((uint32_t)q[j >> 1] >> (4 * (j & 1u)) & 0xFu) << 8) | ((st >> (8 * j)) & 0xFFu)] * xi[c + at[j]];
  }
  *state = st;
  return acc;
}
#endif

/* inputs minus zero point as int16, each group of n (4 or 8) permuted by perm, so that the SMLAD pairs meet the
   weights a word of codes splits into with UXTB16 / SXTB16 (bytes 0, 2 and 1, 3): interleave4 for one weight per
   byte (row_simd's random bytes, row_mean_simd's mu nibbles, int8 codes); int4 codes: const4_order below */
static const uint8_t interleave4[4] = {0, 2, 1, 3};

static int32_t interleave_offset(const int8_t *x, uint32_t n, int32_t zp, const uint8_t *perm, uint32_t group,
                                 int16_t *out) {
  int32_t sum = 0;
  for (uint32_t c = 0; c < n; c += group)
    for (uint32_t j = 0; j < group; ++j) sum += out[c + j] = (int16_t)(x[c + perm[j]] - zp);
  return sum;
}

/* The mean pass on I4_FUSED bytes: (nibble ^ 8) = mu + 8 in 0..15 as unsigned halfwords, two SMLADs per 4
   weights, then acc -= 8 sum_c x_c. */
static int32_t row_mean_simd(const uint8_t *p, const int16_t *xi, uint32_t cols, int32_t sum_x) {
  const uint32_t *pw = (const uint32_t *)(const void *)p, *xw = (const uint32_t *)(const void *)xi;
  int32_t acc = 0;
  for (uint32_t c = 0; c < cols; c += 4) {
    const uint32_t t = (*pw++ & 0x0F0F0F0Fu) ^ 0x08080808u;
    acc = smlad(uxtb16(t), xw[0], acc);
    acc = smlad(uxtb16_ror8(t), xw[1], acc);
    xw += 2;
  }
  return acc - 8 * sum_x;
}

/* Without SMLAD (ARMv6-M, ARMv7-M without DSP): two weights per 32-bit MULS. A pair word W = a + b 2^16 (mod 2^32)
   times X = x_b + x_a 2^16 (mod 2^32) is a x_b + (a x_a + b x_b) 2^16 (mod 2^32): the pair's dot product lands in
   the high halfword, beside a small cross term. Summed over a chunk, T = L + H 2^16 (mod 2^32) with L the cross
   terms and H the dot products; while |L| < 2^15 and |H| < 2^15, L = (int16)T and H = (T - L) >> 16 exactly.
   pair_operands stores every 4 columns' inputs as X words for the code pairs (c0, c2) and (c1, c3), which one mask
   each takes out of a word of 4 codes. */
static int32_t pair_operands(const int8_t *x, uint32_t n, int32_t zp, uint32_t *xw) {
  int32_t sum = 0;
  for (uint32_t c = 0; c < n; c += 4, xw += 2) {
    const int32_t x0 = x[c] - zp, x1 = x[c + 1] - zp, x2 = x[c + 2] - zp, x3 = x[c + 3] - zp;
    xw[0] = (uint32_t)x2 + ((uint32_t)x0 << 16);
    xw[1] = (uint32_t)x3 + ((uint32_t)x1 << 16);
    sum += x0 + x1 + x2 + x3;
  }
  return sum;
}

QBNN_ALWAYS_INLINE int32_t pair_flush(uint32_t t) {
  const int32_t lo = (int16_t)(t & 0xFFFFu);
  return (int32_t)(t - (uint32_t)lo) >> 16;
}

/* The mean pass on I4_FUSED bytes: (nibble ^ 8) = mu + 8 in 0..15, |x| <= 255: |L| <= 4 * 15 * 255 and
   |H| <= 8 * 15 * 255 per chunk of 2 words; then acc -= 8 sum_c x_c. */
static int32_t row_mean_pairs(const uint8_t *p, const uint32_t *xw, uint32_t cols, int32_t sum_x) {
  const uint32_t *pw = (const uint32_t *)(const void *)p;
  const uint32_t *const pend = pw + cols / 4;
  int32_t acc = 0;
  while (pw != pend) {
    uint32_t t = 0;
    for (int j = 0; j < 2 && pw != pend; ++j, xw += 2) {
      const uint32_t b = *pw++ ^ 0x08080808u;
      t += (b & 0x000F000Fu) * xw[0];
      t += ((b >> 8) & 0x000F000Fu) * xw[1];
    }
    acc += pair_flush(t);
  }
  return acc - 8 * sum_x;
}

/* The MC pass through the derived table, 4 weights per PRNG word, w codes of at most 4 bits (|w| <= 7): the
   table indices of codes (0, 2) and (1, 3) formed two at a time (packed byte in bits 8-15, random byte in bits 0-7
   of each halfword), |L| <= 8 * 7 * 255 and |H| <= 16 * 7 * 255 per chunk of 4 words. */
#if defined(__ARM_ARCH_6M__) && defined(__GNUC__)
#define QBNN_V6M_ROWS 1
/* One word of 4 codes on ARMv6-M (32 instructions): xorshift32 (r3); with s8 = st >> 8, A = pk ^ s8 and
   M = 0xFF00FF00 (r4), io = s8 ^ (A & M) and ie = st ^ ((A << 8) & M) (= st ^ ((st ^ pk << 8) & M): A << 8 is
   pk << 8 ^ st but for st's low byte, which M clears): the table indices of codes 1, 3 and 0, 2;
   per pair two LDRSB from the table (r0), the pair word, its X word (LDM r2!) and one MULS added into T (r8).
   r1: the packed codes; r5-r7 scratch. */
#define QBNN__V6M_WORD     \
  "ldm   r1!, {r5}\n\t"    \
  "lsls  r6, r3, #13\n\t"  \
  "eors  r3, r6\n\t"       \
  "lsrs  r6, r3, #17\n\t"  \
  "eors  r3, r6\n\t"       \
  "lsls  r6, r3, #5\n\t"   \
  "eors  r3, r6\n\t"       \
  "lsrs  r6, r3, #8\n\t"   \
  "eors  r5, r6\n\t"       \
  "lsls  r7, r5, #8\n\t"   \
  "ands  r7, r4\n\t"       \
  "eors  r7, r3\n\t"       \
  "ands  r5, r4\n\t"       \
  "eors  r5, r6\n\t"       \
  "uxth  r6, r7\n\t"       \
  "ldrsb r6, [r0, r6]\n\t" \
  "lsrs  r7, r7, #16\n\t"  \
  "ldrsb r7, [r0, r7]\n\t" \
  "lsls  r7, r7, #16\n\t"  \
  "adds  r7, r6\n\t"       \
  "ldm   r2!, {r6}\n\t"    \
  "muls  r7, r6\n\t"       \
  "add   r8, r7\n\t"       \
  "uxth  r6, r5\n\t"       \
  "ldrsb r6, [r0, r6]\n\t" \
  "lsrs  r5, r5, #16\n\t"  \
  "ldrsb r5, [r0, r5]\n\t" \
  "lsls  r5, r5, #16\n\t"  \
  "adds  r5, r6\n\t"       \
  "ldm   r2!, {r6}\n\t"    \
  "muls  r5, r6\n\t"       \
  "add   r8, r5\n\t"

/* A chunk's end: T = 2^15 + L + H 2^16 exactly (T starts at 2^15, kept in r11), so H = T >> 16 (arithmetic)
   while |L|, |H| < 2^15; H goes into the row's sum (r9), T restarts. */
#define QBNN__V6M_FLUSH   \
  "mov   r7, r8\n\t"      \
  "asrs  r7, r7, #16\n\t" \
  "add   r9, r7\n\t"      \
  "mov   r8, r11\n\t"

/* a group of 4 words, one chunk */
#define QBNN__V6M_CHUNK QBNN__V6M_WORD QBNN__V6M_WORD QBNN__V6M_WORD QBNN__V6M_WORD QBNN__V6M_FLUSH

typedef struct {
  const uint32_t *xw;   /* the X words of a row (pair_operands) */
  uint32_t row_bytes;   /* bytes of codes per row (cols, a multiple of 4) */
  uint32_t group_bytes; /* bytes of a row's whole groups of 4 words */
  int32_t *out;         /* the rows' sums, advanced */
  const uint8_t *end;   /* the end of the last row's codes */
  uint32_t state;       /* stream state, in and out */
} v6m_rows;

/* The sums of the rows from pw to a->end: per row, groups of 4 words (16 weights, one chunk each; four per loop
   iteration, the first g % 4 of g groups entered part-way, at an address chosen once per call and kept in lr),
   then the 0-3 words left as one chunk. A naked function: the loop needs every low register, and one call runs
   many rows. */
#define QBNN__UNUSED __attribute__((unused))
__attribute__((naked, noinline)) static void rows_v6m(QBNN__UNUSED const int8_t *lut, QBNN__UNUSED const uint32_t *pw,
                                                      QBNN__UNUSED v6m_rows *a) {
  __asm volatile(
      ".syntax unified\n\t"
      "push  {r2, r4-r7, lr}\n\t"
      "mov   r4, r8\n\t"
      "mov   r5, r9\n\t"
      "mov   r6, r10\n\t"
      "mov   r7, r11\n\t"
      "push  {r4-r7}\n\t"         /* a at [sp, #16] */
      "ldr   r3, [r2, #20]\n\t"   /* stream state */
      "movs  r4, #128\n\t"
      "lsls  r4, r4, #8\n\t"
      "mov   r11, r4\n\t"         /* 2^15 */
      "mov   r8, r4\n\t"          /* T */
      "movs  r4, #255\n\t"
      "lsls  r4, r4, #8\n\t"
      "lsls  r5, r4, #16\n\t"
      "orrs  r4, r5\n\t"          /* M = 0xFF00FF00 */
      "ldr   r6, [r2, #8]\n\t"    /* the entry for g groups per row (g * 16 bytes) */
      "lsrs  r6, r6, #5\n\t"      /* carry: g & 1 */
      "bcc   31f\n\t"
      "lsrs  r6, r6, #1\n\t"      /* carry: g & 2 */
      "bcc   32f\n\t"
      "ldr   r5, =11f\n\t"        /* g % 4 == 3: at the second chunk */
      "b     35f\n"
      "32:\n\t"
      "ldr   r5, =13f\n\t"        /* 1: at the fourth */
      "b     35f\n"
      "31:\n\t"
      "lsrs  r6, r6, #1\n\t"
      "bcc   33f\n\t"
      "ldr   r5, =12f\n\t"        /* 2: at the third */
      "b     35f\n"
      "33:\n\t"
      "ldr   r5, =8f\n"           /* 0: whole iterations, if any */
      "35:\n\t"
      "mov   lr, r5\n\t"
      "b     0f\n\t"
      ".ltorg\n"
      "0:\n\t"                    /* a row; r2 = a, T = 2^15 */
      "ldm   r2, {r2, r5, r6}\n\t" /* X words, row bytes, group bytes */
      "adds  r5, r1\n\t"
      "mov   r12, r5\n\t"         /* end of the row's codes */
      "adds  r6, r1\n\t"
      "mov   r10, r6\n\t"         /* end of its whole groups */
      "movs  r5, #0\n\t"
      "mov   r9, r5\n\t"          /* sum */
      "mov   pc, lr\n"
      "8:\n\t"
      "cmp   r1, r10\n\t"
      "bne   1f\n\t"
      "b     2f\n"
      "1:\n\t" QBNN__V6M_CHUNK
      "11:\n\t" QBNN__V6M_CHUNK
      "12:\n\t" QBNN__V6M_CHUNK
      "13:\n\t" QBNN__V6M_CHUNK
      "cmp   r1, r10\n\t"
      "beq   2f\n\t"
      "b     1b\n"                /* the body is beyond BNE's reach */
      "2:\n\t"
      "cmp   r1, r12\n\t"
      "beq   4f\n"
      "3:\n\t" QBNN__V6M_WORD
      "cmp   r1, r12\n\t"
      "bne   3b\n\t" QBNN__V6M_FLUSH
      "4:\n\t"
      "ldr   r2, [sp, #16]\n\t"
      "ldr   r6, [r2, #12]\n\t"
      "mov   r5, r9\n\t"
      "stm   r6!, {r5}\n\t"
      "str   r6, [r2, #12]\n\t"
      "ldr   r5, [r2, #16]\n\t"
      "cmp   r1, r5\n\t"
      "beq   5f\n\t"
      "b     0b\n"
      "5:\n\t"
      "str   r3, [r2, #20]\n\t"
      "pop   {r4-r7}\n\t"
      "mov   r8, r4\n\t"
      "mov   r9, r5\n\t"
      "mov   r10, r6\n\t"
      "mov   r11, r7\n\t"
      "pop   {r2, r4-r7, pc}\n\t");
}

/* PACKED p = 4 and p = 8 on ARMv6-M: one weight of a group of 4 (pairs in r5, PRNG word in r3): the weight's pair
   to bits 8 .. 7 + p (a shift, AND with the mask in r4), the stream byte ORed in, the table (r0) read and the
   weight multiplied with its int16 input (r12 holds the word of inputs c, c + 1 between the two weights). r6, r7
   scratch. */
#define QBNN__V6M_P4(NIB, BYTE, X)   NIB "ands  r6, r4\n\t" BYTE "orrs  r6, r7\n\t" "ldrsb r6, [r0, r6]\n\t" X \
  "muls  r6, r7\n\t" "add   r8, r6\n\t"
#define QBNN__V6M_XLO "ldm   r2!, {r7}\n\t" "mov   r12, r7\n\t" "sxth  r7, r7\n\t"
#define QBNN__V6M_XHI "mov   r7, r12\n\t" "asrs  r7, r7, #16\n\t"

typedef struct {
  uint32_t state;  /* stream state, in and out */
  uint32_t groups; /* groups of 4 weights in the row */
} v6m_p4;

/* The sum of one row of pairs q against int16 inputs xi (column order, 4-aligned), 4 weights per PRNG word in 50
   instructions: LOAD reads a group's pairs into r5 (q advances by 1 << LOG2 bytes), MASK sets r4, S0-S3
   move each pair's field near bits 8 .. 7 + p. A naked function: the loop needs every low register. */
#define QBNN__V6M_ROW(NAME, LOG2, LOAD, MASK, S0, S1, S2, S3)                                                      \
  __attribute__((naked, noinline)) static int32_t NAME(QBNN__UNUSED const int8_t *lut, QBNN__UNUSED const uint8_t *q, \
                                                       QBNN__UNUSED const int16_t *xi, QBNN__UNUSED v6m_p4 *a) {     \
    __asm volatile(".syntax unified\n\t"                                                                           \
                   "push  {r4-r7, lr}\n\t"                                                                         \
                   "mov   r4, r8\n\t"                                                                              \
                   "mov   r5, r9\n\t"                                                                              \
                   "push  {r3, r4, r5}\n\t"                                                                        \
                   "ldr   r4, [r3, #4]\n\t"                                                                        \
                   "lsls  r4, r4, #" #LOG2 "\n\t"                                                                  \
                   "adds  r4, r1\n\t"                                                                              \
                   "mov   r9, r4\n\t" /* end of the row's pairs */                                                 \
                   "ldr   r3, [r3, #0]\n\t" /* stream state */                                                     \
                   "movs  r4, #0\n\t"                                                                              \
                   "mov   r8, r4\n\t" /* sum */                                                                    \
                   MASK                                                                                            \
                   "cmp   r1, r9\n\t"                                                                              \
                   "beq   2f\n"                                                                                    \
                   "1:\n\t" LOAD                                                                                   \
                   "lsls  r6, r3, #13\n\t"                                                                         \
                   "eors  r3, r6\n\t"                                                                              \
                   "lsrs  r6, r3, #17\n\t"                                                                         \
                   "eors  r3, r6\n\t"                                                                              \
                   "lsls  r6, r3, #5\n\t"                                                                          \
                   "eors  r3, r6\n\t" QBNN__V6M_P4(S0, "uxtb  r7, r3\n\t", QBNN__V6M_XLO)                          \
                       QBNN__V6M_P4(S1, "lsrs  r7, r3, #8\n\t" "uxtb  r7, r7\n\t", QBNN__V6M_XHI)                  \
                           QBNN__V6M_P4(S2, "lsrs  r7, r3, #16\n\t" "uxtb  r7, r7\n\t", QBNN__V6M_XLO)             \
                               QBNN__V6M_P4(S3, "lsrs  r7, r3, #24\n\t", QBNN__V6M_XHI)                            \
                   "cmp   r1, r9\n\t"                                                                              \
                   "bne   1b\n"                                                                                    \
                   "2:\n\t"                                                                                        \
                   "pop   {r4, r5, r6}\n\t"                                                                        \
                   "str   r3, [r4, #0]\n\t"                                                                        \
                   "mov   r0, r8\n\t"                                                                              \
                   "mov   r8, r5\n\t"                                                                              \
                   "mov   r9, r6\n\t"                                                                              \
                   "pop   {r4-r7, pc}\n\t");                                                                       \
  }
/* p = 4: a halfword of 4 nibbles (2-aligned rows); p = 8: a word of 4 bytes (4-aligned rows; the C loop's two
   weights per MULS takes mu bits <= 4) */
QBNN__V6M_ROW(row_packed4_v6m, 1, "ldrh  r5, [r1]\n\t" "adds  r1, #2\n\t", "movs  r4, #15\n\t" "lsls  r4, r4, #8\n\t",
              "lsls  r6, r5, #8\n\t", "lsls  r6, r5, #4\n\t", "movs  r6, r5\n\t", "lsrs  r6, r5, #4\n\t")
QBNN__V6M_ROW(row_packed8_v6m, 2, "ldm   r1!, {r5}\n\t", "movs  r4, #255\n\t" "lsls  r4, r4, #8\n\t",
              "lsls  r6, r5, #8\n\t", "movs  r6, r5\n\t", "lsrs  r6, r5, #8\n\t", "lsrs  r6, r5, #16\n\t")
#else
#define QBNN_V6M_ROWS 0
static int32_t row_lut_pairs(const int8_t *lut, const uint8_t *p, const uint32_t *xw, uint32_t cols,
                             uint32_t *state) {
  const uint32_t *pw = (const uint32_t *)(const void *)p;
  const uint32_t *const pend = pw + cols / 4;
  uint32_t st = *state;
  int32_t acc = 0;
  while (pw != pend) {
    uint32_t t = 0;
    for (int j = 0; j < 4 && pw != pend; ++j, xw += 2) {
      st = qbnn_xorshift32(st);
      const uint32_t pk = *pw++;
      const uint32_t ie = ((pk << 8) & 0xFF00FF00u) | (st & 0x00FF00FFu);
      const uint32_t io = (pk & 0xFF00FF00u) | ((st >> 8) & 0x00FF00FFu);
      t += ((uint32_t)(int32_t)lut[ie & 0xFFFFu] + ((uint32_t)(int32_t)lut[ie >> 16] << 16)) * xw[0];
      t += ((uint32_t)(int32_t)lut[io & 0xFFFFu] + ((uint32_t)(int32_t)lut[io >> 16] << 16)) * xw[1];
    }
    acc += pair_flush(t);
  }
  *state = st;
  return acc;
}
#endif

/* Constant weights straight from their stored codes. int8: SXTB16 splits a word of 4 codes into the signed
   halfword pairs (0, 2) and (1, 3), x in interleave4 order. int4 (two per byte, low nibble first, so nibble j of
   a word is column j): codes ^ 8 = w + 8 as unsigned nibbles, (word >> 4j) & 0x000F000F is the pair of columns
   (j, j + 4) (x in const4_order), then acc -= 8 sum x (|sum (w + 8) x| <= 16 * 255 * cols < 2^31 by the
   accumulator bound of qbnn__check_weighted). On DSP targets 4-aligned rows of whole 16-column blocks run
   hand-scheduled loops: 24 instructions per 16 int8 weights, 25 per 16 int4 weights. */
static const uint8_t const4_order[8] = {0, 4, 1, 5, 2, 6, 3, 7};

#if QBNN_HAVE_DSP
/* One weight word W of the hand-scheduled loops against the next int16 operand words x0, x1 (two per ldrd):
   int8, sign-extended byte pairs; int4 (biased by eor 0x88888888: w + 8), masked nibble pairs. */
#define QBNN__I8_WORD(W)                            \
  "ldrd    %[x0], %[x1], [%[xw]], #8\n\t"          \
  "sxtb16  %[t], %[" W "]\n\t"                     \
  "smlad   %[acc], %[t], %[x0], %[acc]\n\t"        \
  "sxtb16  %[t], %[" W "], ror #8\n\t"             \
  "smlad   %[acc], %[t], %[x1], %[acc]\n\t"
#define QBNN__I4_HALF(W, LO, HI)                    \
  "ldrd    %[x0], %[x1], [%[xw]], #8\n\t"          \
  "and     %[t], %[m], %[" W "]" LO "\n\t"         \
  "smlad   %[acc], %[t], %[x0], %[acc]\n\t"        \
  "and     %[t], %[m], %[" W "], lsr #" HI "\n\t"  \
  "smlad   %[acc], %[t], %[x1], %[acc]\n\t"
#define QBNN__I4_WORD(W) \
  "eor     %[" W "], %[" W "], #0x88888888\n\t" QBNN__I4_HALF(W, "", "4") QBNN__I4_HALF(W, ", lsr #8", "12")
#endif

static int32_t row_const_simd(const int8_t *w, const int16_t *xi, uint32_t cols, int bits, int32_t sum_x) {
  const uint32_t *xw = (const uint32_t *)(const void *)xi;
  int32_t acc = 0;
  uint32_t c = 0;
#if QBNN_HAVE_DSP
  const uint32_t whole = ((uintptr_t)w & 3u) == 0 ? cols & ~15u : 0u;
  if (whole) {
    const int8_t *const wend = w + (bits == 8 ? whole : whole / 2);
    uint32_t w0, w1, x0, x1, t;
    if (bits == 8) {
      __asm volatile(
          "1:\n\t"
          "ldrd    %[w0], %[w1], [%[wp]], #8\n\t" QBNN__I8_WORD("w0") QBNN__I8_WORD("w1")
          "ldrd    %[w0], %[w1], [%[wp]], #8\n\t" QBNN__I8_WORD("w0") QBNN__I8_WORD("w1")
          "cmp     %[wp], %[wend]\n\t"
          "bne     1b\n\t"
          : [acc] "+&r"(acc), [wp] "+&r"(w), [xw] "+&r"(xw), [w0] "=&r"(w0), [w1] "=&r"(w1), [x0] "=&r"(x0),
            [x1] "=&r"(x1), [t] "=&r"(t)
          : [wend] "r"(wend)
          : "cc", "memory");
    } else {
      const uint32_t m = 0x000F000Fu;
      __asm volatile(
          "1:\n\t"
          "ldrd    %[w0], %[w1], [%[wp]], #8\n\t" QBNN__I4_WORD("w0") QBNN__I4_WORD("w1")
          "cmp     %[wp], %[wend]\n\t"
          "bne     1b\n\t"
          : [acc] "+&r"(acc), [wp] "+&r"(w), [xw] "+&r"(xw), [w0] "=&r"(w0), [w1] "=&r"(w1), [x0] "=&r"(x0),
            [x1] "=&r"(x1), [t] "=&r"(t)
          : [wend] "r"(wend), [m] "r"(m)
          : "cc", "memory");
    }
    c = whole;
  }
#endif
  if (bits == 8) {
    for (; c < cols; c += 4, w += 4, xw += 2) {
      uint32_t t;
      memcpy(&t, w, 4);
      acc = smlad(sxtb16(t), xw[0], acc);
      acc = smlad(sxtb16_ror8(t), xw[1], acc);
    }
    return acc;
  }
  for (; c < cols; c += 8, w += 4, xw += 4) {
    uint32_t t;
    memcpy(&t, w, 4);
    t ^= 0x88888888u; /* every nibble + 8 */
    acc = smlad(t & 0x000F000Fu, xw[0], acc);
    acc = smlad((t >> 4) & 0x000F000Fu, xw[1], acc);
    acc = smlad((t >> 8) & 0x000F000Fu, xw[2], acc);
    acc = smlad((t >> 12) & 0x000F000Fu, xw[3], acc);
  }
  return acc - 8 * sum_x;
}

/* Bayesian MC pass. The word-at-a-time kernels need the stream at a word boundary (nbuf == 0) and
   cols % 4 == 0, which holds for every sample when rows * cols % 4 == 0; otherwise the byte-wise kernels run
   (same results). SIMD reads the stored bytes a word at a time: 4-aligned rows (the generator aligns them to
   16; a caller's unaligned copy takes the byte-wise word kernel, same results). */
QBNN_ALWAYS_INLINE void eval_sampled(const qbnn_rt_layer *L, const int8_t *x, int8_t *y, qbnn_op_ctx *ctx,
                                     const int plain) {
  const uint32_t rows = L->core.rows, cols = L->core.cols;
  qbnn_stream *s = &ctx->rt->streams[L->core.layer_index];
  const uint8_t *p = L->core.mu;
  const int kernel = ctx->rt->kernel;
  const qbnn__rq r0 = qbnn__requant_of(L, 0);
  if (kernel == QBNN_KERNEL_REF) {
    for (uint32_t r = 0; r < rows; ++r) y[r] = requant(L, &r0, row_ref(L, r, x, s), r, plain);
  } else if (L->core.layout == QBNN_LAYOUT_PACKED && L->core.weight_bits + L->core.sigma_bits != 8u) {
    /* (a pair per byte, p = 8: an I4_FUSED byte's role, the pair table the derived table's indexing; below).
       The assembly loops run for the SIMD kernel, and for LUT, the default, on Thumb-2 cores without DSP. */
    const int fast = kernel == QBNN_KERNEL_SIMD || (QBNN_PACKED_ASM && !QBNN_HAVE_DSP);
    if ((cols & 3u) != 0 || s->nbuf != 0) {
      for (uint32_t r = 0; r < rows; ++r) y[r] = requant(L, &r0, row_packed(L, r, x, s), r, plain);
    } else if (L->core.weight_bits + L->core.sigma_bits == 4u) {
      const int8_t *const lut = L->wlut;
      const int32_t zp = L->in_zero_point;
      int16_t *const xi = ctx->x;
      uint32_t st = s->state;
      if (fast) {
#if QBNN_HAVE_MVE
        if (!ctx->x_ready) mve_operands(x, cols, zp, xi);
        ctx->x_ready = 1;
        const uint32_t whole = cols & ~15u;
        for (uint32_t r = 0; r < rows; ++r, p += cols / 2) {
          const int32_t acc = row_packed4_mve(lut, p, xi, whole / 16, &st);
          y[r] = requant(L, &r0, acc + row_packed4_mve_tail(lut, p + whole / 2, xi + whole, cols - whole, &st), r, plain);
        }
#else
        if (!ctx->x_ready) qbnn__offset16(x, cols, zp, xi); /* column order */
        ctx->x_ready = 1;
        for (uint32_t r = 0; r < rows; ++r, p += cols / 2) y[r] = requant(L, &r0, row_packed4(lut, p, x, xi, cols, zp, &st), r, plain);
#endif
      }
#if QBNN_V6M_ROWS
      else if (((uintptr_t)p & 1u) == 0) { /* ARMv6-M's default kernel, LUT */
        if (!ctx->x_ready) qbnn__offset16(x, cols, zp, xi); /* column order */
        ctx->x_ready = 1;
        v6m_p4 a = {st, cols / 4};
        for (uint32_t r = 0; r < rows; ++r, p += cols / 2) y[r] = requant(L, &r0, row_packed4_v6m(lut, p, xi, &a), r, plain);
        st = a.state;
      }
#endif
      else {
        for (uint32_t r = 0; r < rows; ++r, p += cols / 2)
          y[r] = requant(L, &r0, row_packed4_words(lut, p, x, cols, zp, &st), r, plain);
      }
      s->state = st;
      s->position += rows * cols;
      s->buf = 0;
    } else if (fast) {
      /* whole groups of 8 pairs through the assembly loop; a row that starts mid-group (cols % 8 == 4) takes its
         first 4 weights, and a row its last 4, through the reservoir, as does the tensor's last group (no read
         past the stored bytes). One PRNG word per 4 weights in every part: the stream stays in order. */
      const uint32_t pb = (uint32_t)L->core.weight_bits + L->core.sigma_bits, n = rows * cols;
      int16_t *const xi = ctx->x;
      uint32_t st = s->state;
      if (!ctx->x_ready) qbnn__offset16(x, cols, L->in_zero_point, xi); /* column order */
      ctx->x_ready = 1;
      for (uint32_t r = 0, first = 0; r < rows; ++r, first += cols) {
        const uint32_t head = (8u - (first & 7u)) & 7u; /* 0 or 4 */
        uint32_t groups = (cols - head) / 8;
        if (first + head + 8 * groups == n && groups > 0) --groups;
        int32_t acc = head ? row_packed_words(L, first, head, x, &st) : 0;
        acc += row_packed_groups(L->wlut, p + (first + head) / 8 * pb, xi + head, groups, pb, &st);
        const uint32_t done = head + 8 * groups;
        if (done < cols) acc += row_packed_words(L, first + done, cols - done, x + done, &st);
        y[r] = requant(L, &r0, acc, r, plain);
      }
      s->state = st;
      s->position += rows * cols;
      s->buf = 0;
    } else {
      for (uint32_t r = 0; r < rows; ++r) y[r] = requant(L, &r0, row_packed_words(L, r * cols, cols, x, &s->state), r, plain);
      s->position += rows * cols; /* whole words consumed: nbuf stays 0 */
      s->buf = 0;
    }
  } else if (!L->wlut) { /* I4_FUSED with the offset table (PACKED always has its pair table) */
    if (!ctx->x_ready) qbnn__offset16(x, cols, L->in_zero_point, ctx->x); /* plain order (not interleaved) */
    ctx->x_ready = 1;
    for (uint32_t r = 0; r < rows; ++r, p += cols)
      y[r] = requant(L, &r0, row_offsets(L, p, ctx->x, s, ctx->rt->filter), r, plain);
  } else if ((cols & 3u) != 0 || s->nbuf != 0) {
    for (uint32_t r = 0; r < rows; ++r, p += cols) y[r] = requant(L, &r0, row_lut(L, p, x, s), r, plain);
  } else {
    if (kernel == QBNN_KERNEL_SIMD && ((uintptr_t)p & 3u) == 0) {
      /* locals: the int8 stores to y may alias anything, so fields would be reloaded every row */
      int16_t *const xi = ctx->x;
      const int8_t *const lut = L->wlut;
      uint32_t st = s->state;
#if QBNN_HAVE_MVE
      if (!ctx->x_ready) mve_operands(x, cols, L->in_zero_point, xi);
      ctx->x_ready = 1;
      const uint32_t whole = cols & ~15u; /* columns of whole 16-weight blocks; the rest through row_simd */
      for (uint32_t r = 0; r < rows; ++r, p += cols) {
        const int32_t acc = row_mve(lut, p, xi, whole / 16, &st);
        y[r] = requant(L, &r0, acc + row_simd(lut, p + whole, xi + whole, (int)(cols - whole), &st), r, plain);
      }
#else
      if (!ctx->x_ready) interleave_offset(x, cols, L->in_zero_point, interleave4, 4, xi);
      ctx->x_ready = 1;
      for (uint32_t r = 0; r < rows; ++r, p += cols) y[r] = requant(L, &r0, row_simd(lut, p, xi, (int)cols, &st), r, plain);
#endif
      s->state = st;
    } else if (!QBNN_HAVE_DSP && L->core.weight_bits <= 4 && ((uintptr_t)p & 3u) == 0) { /* two weights per MULS */
      uint32_t *const xw = (uint32_t *)(void *)ctx->x;
      const int8_t *const lut = L->wlut;
      if (!ctx->x_ready) pair_operands(x, cols, L->in_zero_point, xw);
      ctx->x_ready = 1;
#if QBNN_V6M_ROWS
      int32_t acc[16]; /* rows per call */
      v6m_rows a = {xw, cols, cols & ~15u, acc, p, s->state};
      for (uint32_t r = 0, n; r < rows; r += n, p += n * cols) {
        n = rows - r < 16u ? rows - r : 16u;
        a.out = acc;
        a.end = p + n * cols;
        rows_v6m(lut, (const uint32_t *)(const void *)p, &a);
        for (uint32_t i = 0; i < n; ++i) y[r + i] = requant(L, &r0, acc[i], r + i, plain);
      }
      s->state = a.state;
#else
      uint32_t st = s->state;
      for (uint32_t r = 0; r < rows; ++r, p += cols) y[r] = requant(L, &r0, row_lut_pairs(lut, p, xw, cols, &st), r, plain);
      s->state = st;
#endif
    }
#if QBNN_V6M_ROWS
    else if (((uintptr_t)p & 3u) == 0) { /* PACKED p = 8 with mu bits > 4 */
      int16_t *const xi = ctx->x;
      if (!ctx->x_ready) qbnn__offset16(x, cols, L->in_zero_point, xi); /* column order */
      ctx->x_ready = 1;
      v6m_p4 a = {s->state, cols / 4};
      for (uint32_t r = 0; r < rows; ++r, p += cols) y[r] = requant(L, &r0, row_packed8_v6m(L->wlut, p, xi, &a), r, plain);
      s->state = a.state;
    }
#endif
    else {
      for (uint32_t r = 0; r < rows; ++r, p += cols)
        y[r] = requant(L, &r0, row_lut_words(L->wlut, p, x, (int)cols, L->in_zero_point, &s->state), r, plain);
    }
    s->position += rows * cols; /* whole words consumed: nbuf stays 0 */
    s->buf = 0;
  }
}

/* two copies of the sampled pass (separate functions, so that the compiler cannot merge them): the MLP's
   per-tensor, bias-free requantisation without per-row checks, and the general one */
QBNN_NOINLINE void eval_sampled_plain(const qbnn_rt_layer *L, const int8_t *x, int8_t *y, qbnn_op_ctx *ctx) {
  eval_sampled(L, x, y, ctx, 1);
}

QBNN_NOINLINE void eval_sampled_general(const qbnn_rt_layer *L, const int8_t *x, int8_t *y, qbnn_op_ctx *ctx) {
  eval_sampled(L, x, y, ctx, 0);
}

void qbnn_op_fully_connected_eval(const qbnn_op *op, const int8_t *x, int8_t *y, qbnn_op_ctx *ctx) {
  const qbnn_rt_layer *L = (const qbnn_rt_layer *)op->params;
  const uint32_t rows = L->core.rows, cols = L->core.cols;
  if (L->core.mu && !ctx->mean) {
    if (!L->bias && !L->multipliers) eval_sampled_plain(L, x, y, ctx);
    else eval_sampled_general(L, x, y, ctx);
    return;
  }
  const uint8_t *p = L->core.mu;
  const int simd = ctx->rt->kernel == QBNN_KERNEL_SIMD;
  if (p && L->core.layout == QBNN_LAYOUT_I4_FUSED && simd && (cols & 3u) == 0 &&
      ((uintptr_t)p & 3u) == 0) { /* mean pass straight from the stored nibbles */
    const int32_t sum_x = interleave_offset(x, cols, L->in_zero_point, interleave4, 4, ctx->x);
    for (uint32_t r = 0; r < rows; ++r, p += cols) y[r] = qbnn__requantize(L, row_mean_simd(p, ctx->x, cols, sum_x), r);
    return;
  }
  if (!QBNN_HAVE_DSP && p && L->core.layout == QBNN_LAYOUT_I4_FUSED && (cols & 3u) == 0 && ((uintptr_t)p & 3u) == 0) {
    uint32_t *const xw = (uint32_t *)(void *)ctx->x; /* 8-byte aligned arena piece of cols int16 */
    const int32_t sum_x = pair_operands(x, cols, L->in_zero_point, xw);
    for (uint32_t r = 0; r < rows; ++r, p += cols) y[r] = qbnn__requantize(L, row_mean_pairs(p, xw, cols, sum_x), r);
    return;
  }
  const uint32_t per_word = L->filter_bits == 4 ? 8u : 4u; /* constant codes in a 32-bit word */
  if (!p && simd && cols % per_word == 0) { /* constant weights straight from their codes */
    const int32_t sum_x =
        interleave_offset(x, cols, L->in_zero_point, per_word == 8 ? const4_order : interleave4, per_word, ctx->x);
    const int8_t *w = L->filter;
    for (uint32_t r = 0; r < rows; ++r, w += cols * (uint32_t)L->filter_bits / 8)
      y[r] = qbnn__requantize(L, row_const_simd(w, ctx->x, cols, L->filter_bits, sum_x), r);
    return;
  }
  /* constant weights, or the mean of another layout: one filter row at a time */
  qbnn__offset16(x, cols, L->in_zero_point, ctx->x);
  for (uint32_t r = 0; r < rows; ++r) {
    qbnn__filter_row(L, r, ctx->rt->kernel, 1, 0, ctx->rt->filter);
    y[r] = qbnn__requantize(L, qbnn__dot16(ctx->rt->filter, ctx->x, cols, 0), r);
  }
}
