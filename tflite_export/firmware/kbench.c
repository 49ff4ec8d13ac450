/* Kernel bench: one constant-weight FULLY_CONNECTED op (the deterministic prefix's dense layer, LeNet-5's
   400 -> 120) with int8 and int4 codes, run through the op's eval with the SIMD kernel and with the reference
   kernel (one filter row at a time), on pseudo-random codes and inputs. Prints key=value lines: the SIMD run's
   instructions per multiply-accumulate (whole op: operands, rows, requantisation) and the check against the
   reference run and a plain C dot product; exits non-zero on any mismatch. No generated model needed. */
#include <stdio.h>
#include <string.h>

#include "icount.h"
#include "qbnn_ops.h"

#define ROWS 120
#define COLS 400

static int8_t g_filter[ROWS * COLS]; /* int8 codes, or int4 two per byte (low nibble first) */
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

static int run(int bits) {
  for (uint32_t i = 0; i < sizeof g_filter; ++i) g_filter[i] = (int8_t)next();
  if (bits == 8)
    for (uint32_t i = 0; i < sizeof g_filter; ++i)
      if (g_filter[i] == -128) g_filter[i] = -127; /* symmetric int8 codes */
  for (uint32_t r = 0; r < ROWS; ++r) g_bias[r] = (int32_t)(next() % 2001u) - 1000;
  for (uint32_t c = 0; c < COLS; ++c) g_x[c] = (int8_t)next();
  /* ReLU; multiplier about 0.6 * 2^31 */
  const qbnn_rt_layer L = {.core = {.rows = ROWS, .cols = COLS}, .filter = g_filter, .filter_bits = bits,
                           .in_zero_point = -3, .out_zero_point = 5, .multiplier = 1288490189,
                           .shift = bits == 8 ? -9 : -6, .bias = g_bias, .act_min = 0, .act_max = 127};
  qbnn_op op;
  memset(&op, 0, sizeof op);
  op.kind = QBNN_OP_FULLY_CONNECTED;
  op.in.h = op.in.w = op.out.h = op.out.w = 1;
  op.in.c = COLS;
  op.out.c = ROWS;
  op.params = &L;
  static qbnn_runtime_t rt;
  rt.filter = g_row;
  qbnn_op_ctx ctx;
  memset(&ctx, 0, sizeof ctx);
  ctx.rt = &rt;
  ctx.x = g_xi;
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

int main(void) {
  printf("board=%s\n", BOARD_NAME);
  printf("kernel=%s\n", QBNN_HAVE_DSP ? "simd (SMLAD)" : "simd (C emulation)");
  const int bad = run(8) + run(4);
  printf("%s\n", bad ? "KBENCH FAILED" : "KBENCH PASSED");
  return bad != 0;
}
