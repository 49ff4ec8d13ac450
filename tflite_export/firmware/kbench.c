/* Kernel bench: one constant-weight FULLY_CONNECTED op (the deterministic prefix's dense layer, LeNet-5's
   400 -> 120) with int8 and int4 codes, run through the op's eval with the SIMD kernel and with the reference
   kernel (one filter row at a time), on pseudo-random codes and inputs; then one Bayesian FULLY_CONNECTED op stored
   PACKED (784 -> 32, the paper MLP's first-layer width) per pair width, sampled through the default kernel
   (SIMD on DSP targets, else LUT). Prints key=value lines: instructions per multiply-accumulate (whole op: operands,
   rows, requantisation), per PACKED weight and MC sample (the op's eval for one sample, the operands prepared by
   the previous one, as the runtime keeps them), and the checks against the reference kernel, the other table
   kernel and a plain C loop over the sampler core; exits non-zero on any mismatch. No generated model needed. */
#include <stdio.h>
#include <string.h>

#include "icount.h"
#include "qbnn_ops.h"

#define ROWS 120
#define COLS 400

/* the constant bench's filter (int8 codes, or int4 two per byte, low nibble first), then the PACKED bench's pair
   bytes and pair table */
static int8_t g_mem[96 * 1024] __attribute__((aligned(16)));
#define g_filter g_mem
static int32_t g_bias[ROWS];
static int8_t g_x[COLS], g_y[ROWS], g_y_ref[ROWS];
static int16_t g_xi[COLS], g_row[COLS];
static uint32_t g_rng = 0x12345678u;

static uint32_t next(void) {
  g_rng = qbnn_xorshift32(g_rng);
  return g_rng;
}

/* filter code (r, c) of the packed filter */
static int32_t code(int bits, uint32_t r, uint32_t c) {
  if (bits == 8) return g_filter[r * COLS + c];
  const uint32_t n = r * COLS + c, b = (uint8_t)g_filter[n / 2] >> ((n & 1u) * 4u);
  return (int32_t)(b & 0xFu) - (int32_t)((b & 0x8u) << 1);
}

/* A FULLY_CONNECTED op of layer L (1 x 1 x cols -> rows) and the context its eval reads, operands in xi. */
static void fc_op(qbnn_op *op, qbnn_op_ctx *ctx, qbnn_runtime_t *rt, const qbnn_rt_layer *L, int16_t *xi) {
  memset(op, 0, sizeof *op);
  op->kind = QBNN_OP_FULLY_CONNECTED;
  op->in.h = op->in.w = op->out.h = op->out.w = 1;
  op->in.c = L->core.cols;
  op->out.c = L->core.rows;
  op->params = L;
  rt->filter = g_row;
  memset(ctx, 0, sizeof *ctx);
  ctx->rt = rt;
  ctx->x = xi;
}

static int run(int bits) {
  for (uint32_t i = 0; i < ROWS * COLS; ++i) g_filter[i] = (int8_t)next();
  if (bits == 8)
    for (uint32_t i = 0; i < ROWS * COLS; ++i)
      if (g_filter[i] == -128) g_filter[i] = -127; /* symmetric int8 codes */
  for (uint32_t r = 0; r < ROWS; ++r) g_bias[r] = (int32_t)(next() % 2001u) - 1000;
  for (uint32_t c = 0; c < COLS; ++c) g_x[c] = (int8_t)next();
  /* ReLU; multiplier about 0.6 * 2^31 */
  const qbnn_rt_layer L = {.core = {.rows = ROWS, .cols = COLS}, .filter = g_filter, .filter_bits = bits,
                           .in_zero_point = -3, .out_zero_point = 5, .multiplier = 1288490189,
                           .shift = bits == 8 ? -9 : -6, .bias = g_bias, .act_min = 0, .act_max = 127};
  qbnn_op op;
  static qbnn_runtime_t rt;
  qbnn_op_ctx ctx;
  fc_op(&op, &ctx, &rt, &L, g_xi);
  ctx.mean = 1;

  rt.kernel = QBNN_KERNEL_SIMD;
  icount_start();
  const uint64_t t0 = icount_now();
  qbnn_op_fully_connected_eval(&op, g_x, g_y, &ctx);
  const uint64_t t1 = icount_now();
  rt.kernel = QBNN_KERNEL_REF;
  qbnn_op_fully_connected_eval(&op, g_x, g_y_ref, &ctx);

  int bad = 0;
  for (uint32_t r = 0; r < ROWS; ++r) {
    int32_t acc = 0;
    for (uint32_t c = 0; c < COLS; ++c) acc += code(bits, r, c) * ((int32_t)g_x[c] - L.in_zero_point);
    const int8_t y = qbnn__requantize(&L, acc, r);
    bad += g_y[r] != y || g_y_ref[r] != y;
  }
  const uint64_t insn = t1 - t0, macs = (uint64_t)ROWS * COLS;
  printf("fc_int%d_macs=%lu\n", bits, (unsigned long)macs);
  printf("fc_int%d_insn=%lu\n", bits, (unsigned long)insn);
  printf("fc_int%d_insn_per_mac=%lu.%03lu\n", bits, (unsigned long)(insn / macs),
         (unsigned long)(insn * 1000u / macs % 1000u));
  printf("fc_int%d_mismatches=%d\n", bits, bad);
  return bad;
}

#define P_ROWS 32
#define P_COLS 784
#define P_STREAM 3

static int8_t g_px[P_COLS], g_py[3][P_ROWS];
static int16_t g_pxi[P_COLS] __attribute__((aligned(8)));

/* One PACKED op with b-bit mu codes and sb-bit sigma codes: random valid codes packed little-endian, the pair table
   from the sampler core, one MC sample per kernel from the same stream state. */
static int run_packed(uint32_t b, uint32_t sb) {
  const uint32_t p = b + sb, n = P_ROWS * P_COLS, bytes = (n * p + 7u) / 8u;
  const int32_t max_code = (1 << (b - 1)) - 1;
  uint8_t *const pairs = (uint8_t *)g_mem;
  int8_t *const table = g_mem + ((bytes + 15u) & ~15u);
  static int32_t sigma_q[64];
  memset(pairs, 0, bytes);
  for (uint32_t i = 0; i < n; ++i) {
    const int32_t mu = (int32_t)(next() % (uint32_t)(2 * max_code + 1)) - max_code;
    const uint32_t v = ((uint32_t)mu & ((1u << b) - 1u)) | (next() % (1u << sb)) << b, bit = i * p;
    pairs[bit / 8] |= (uint8_t)(v << (bit % 8));
    if (bit % 8 + p > 8) pairs[bit / 8 + 1] |= (uint8_t)(v >> (8 - bit % 8));
  }
  for (uint32_t k = 0; k < (1u << sb); ++k) sigma_q[k] = (int32_t)((k + 1) * 512u * (uint32_t)max_code >> sb);
  for (uint32_t v = 0; v < (1u << p); ++v) {
    for (uint32_t u = 0; u < 256; ++u) table[v << 8 | u] = (int8_t)qbnn_sample_weight(qbnn_pair_mu(v, b), sigma_q[v >> b], u, max_code);
  }
  for (uint32_t c = 0; c < P_COLS; ++c) g_px[c] = (int8_t)next();
  const qbnn_rt_layer L = {.core = {.rows = P_ROWS, .cols = P_COLS, .weight_bits = (uint8_t)b, .sigma_bits = (uint8_t)sb,
                                    .layout = QBNN_LAYOUT_PACKED, .layer_index = P_STREAM, .mu = pairs,
                                    .sigma_q = sigma_q},
                           .wlut = table, .wlut_entries = 256u << p, .in_zero_point = -3, .out_zero_point = 5,
                           .multiplier = 1288490189, .shift = -7, .act_min = -128, .act_max = 127};
  qbnn_op op;
  static qbnn_runtime_t rt;
  qbnn_op_ctx ctx;
  fc_op(&op, &ctx, &rt, &L, g_pxi);
  const int kernels[3] = {QBNN_HAVE_DSP ? QBNN_KERNEL_SIMD : QBNN_KERNEL_LUT,
                          QBNN_HAVE_DSP ? QBNN_KERNEL_LUT : QBNN_KERNEL_SIMD, QBNN_KERNEL_REF};
  uint64_t insn = 0;
  uint32_t state[3];
  for (int k = 0; k < 3; ++k) {
    rt.kernel = kernels[k];
    qbnn_stream_init(&rt.streams[P_STREAM], 99, P_STREAM);
    ctx.x_ready = 0;
    qbnn_op_fully_connected_eval(&op, g_px, g_py[k], &ctx); /* a sample that prepares the operands */
    if (k == 0) {
      icount_start();
      const uint64_t t0 = icount_now();
      qbnn_op_fully_connected_eval(&op, g_px, g_py[k], &ctx);
      insn = icount_now() - t0;
    } else {
      qbnn_op_fully_connected_eval(&op, g_px, g_py[k], &ctx);
    }
    state[k] = rt.streams[P_STREAM].state;
  }
  /* the second sample through the sampler core, from the stream as the first left it */
  qbnn_stream s;
  qbnn_stream_init(&s, 99, P_STREAM);
  for (uint32_t i = 0; i < n; ++i) (void)qbnn_stream_byte(&s);
  int bad = state[1] != state[0] || state[2] != state[0];
  for (uint32_t r = 0; r < P_ROWS; ++r) {
    int32_t acc = 0;
    for (uint32_t c = 0; c < P_COLS; ++c) {
      int32_t mu;
      uint32_t k;
      qbnn_layer_codes(&L.core, r * P_COLS + c, &mu, &k);
      acc += qbnn_sample_weight(mu, sigma_q[k], qbnn_stream_byte(&s), max_code) * ((int32_t)g_px[c] - L.in_zero_point);
    }
    const int8_t y = qbnn__requantize(&L, acc, r);
    bad += g_py[0][r] != y || g_py[1][r] != y || g_py[2][r] != y;
  }
  bad += s.state != state[0];
  printf("packed_%lu_%lu_weights=%lu\n", (unsigned long)b, (unsigned long)sb, (unsigned long)n);
  printf("packed_%lu_%lu_insn=%lu\n", (unsigned long)b, (unsigned long)sb, (unsigned long)insn);
  printf("packed_%lu_%lu_insn_per_weight_sample=%lu.%03lu\n", (unsigned long)b, (unsigned long)sb,
         (unsigned long)(insn / n), (unsigned long)(insn * 1000u / n % 1000u));
  printf("packed_%lu_%lu_mismatches=%d\n", (unsigned long)b, (unsigned long)sb, bad);
  return bad;
}

int main(void) {
  printf("board=%s\n", BOARD_NAME);
  printf("kernel=%s\n", QBNN_HAVE_DSP ? "simd (SMLAD)" : "simd (C emulation)");
  printf("packed_kernel=%s\n", QBNN_HAVE_MVE ? "simd-helium" : QBNN_HAVE_DSP ? "simd-dsp" : "lut");
  int bad = run(8) + run(4);
  /* mu bits, sigma bits: p = 4, 8, 8, 3, 5, 6, 7 */
  static const uint8_t widths[][2] = {{3, 1}, {4, 4}, {5, 3}, {2, 1}, {3, 2}, {4, 2}, {4, 3}};
  for (uint32_t i = 0; i < sizeof widths / sizeof widths[0]; ++i) bad += run_packed(widths[i][0], widths[i][1]);
  printf("%s\n", bad ? "KBENCH FAILED" : "KBENCH PASSED");
  return bad != 0;
}
