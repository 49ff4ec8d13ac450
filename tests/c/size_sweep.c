/* Size products of every op kind near 2^16, 2^31 and 2^32, on the host under ASan/UBSan: each hand-built model
   is either refused by qbnn_arena_bytes (0) and qbnn_init (QBNN_RT_ERR_LIMITS), or accepted and run (MC and
   mean passes, every kernel) on arrays of exactly the sizes it declares, so any access past them is reported.
   Dims, filters and weights are written as an attacker would write model_data.c: a filter's `cols` holds its
   true size mod 2^32, so the shapes chain and every 32-bit check the runtime could make in 32 bits passes.
   Prints "ok NAME ..." or "FAIL NAME ..." per case; `size_sweep NAME` runs one case. Exit 0 when all pass. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qbnn_runtime.h"

#define CLASSES 10
#define CAP ((uint64_t)64 << 20) /* larger declared arrays get 64 bytes: the model must then be refused */

enum { W_I8, W_I4, W_BAYES }; /* constant int8 / int4 codes; Bayesian 4-bit I4_FUSED */
enum { RUN, REFUSE };

typedef struct {
  qbnn_op ops[8];
  union {
    qbnn_rt_layer fc;
    qbnn_conv_params conv;
    qbnn_pool_params pool;
  } p[8];
  qbnn_dims in0; /* the model's input */
  int n, streams, truncated;
  void *mem[16];
  int nmem;
} model_b;

static int8_t g_wlut[65536]; /* derived table: every sampled code 0 */
static int32_t g_sigma_q[16];

static uint64_t elems(qbnn_dims d) { return (uint64_t)d.h * d.w * d.c; }
static qbnn_dims dims(uint32_t h, uint32_t w, uint32_t c) {
  const qbnn_dims d = {(uint16_t)h, (uint16_t)w, (uint16_t)c};
  return d;
}

static void *alloc(model_b *b, uint64_t bytes) {
  if (bytes > CAP) b->truncated = 1, bytes = 64;
  void *p = calloc(1, bytes ? (size_t)bytes : 1);
  b->mem[b->nmem++] = p;
  return p;
}

/* a weighted op's layer for a [rows, cols] filter (cols stored mod 2^32), its arrays as large as declared */
static void layer(model_b *b, qbnn_rt_layer *L, uint64_t rows, uint64_t cols, int w) {
  memset(L, 0, sizeof *L);
  L->core.rows = (uint32_t)rows;
  L->core.cols = (uint32_t)cols;
  const uint64_t stored = (uint64_t)L->core.rows * L->core.cols; /* the weights the model declares */
  L->multiplier = 1 << 30;
  L->shift = -4;
  L->act_min = -128;
  L->act_max = 127;
  if (w == W_BAYES) {
    L->core.weight_bits = L->core.sigma_bits = 4;
    L->core.layout = QBNN_LAYOUT_I4_FUSED;
    L->core.layer_index = (uint16_t)b->streams++;
    L->core.sigma_q = g_sigma_q;
    L->core.mu = (const uint8_t *)alloc(b, stored); /* byte 0: mu 0, sigma code 0 */
    L->wlut = g_wlut;
  } else {
    L->filter_bits = w == W_I8 ? 8 : 4;
    L->filter = (const int8_t *)alloc(b, w == W_I8 ? stored : (stored + 1) / 2);
  }
}

static qbnn_op *add(model_b *b, uint8_t kind, qbnn_dims in, qbnn_dims out) {
  qbnn_op *op = &b->ops[b->n];
  op->kind = kind, op->in = in, op->out = out, op->params = &b->p[b->n];
  b->n++;
  return op;
}

static qbnn_dims last_out(const model_b *b) { return b->n ? b->ops[b->n - 1].out : b->in0; }

static void fc(model_b *b, uint32_t out_c, int w) {
  const qbnn_dims in = last_out(b);
  add(b, QBNN_OP_FULLY_CONNECTED, in, dims(1, 1, out_c));
  layer(b, &b->p[b->n - 1].fc, out_c, elems(in), w);
}

static void reshape(model_b *b, qbnn_dims to) { add(b, QBNN_OP_RESHAPE, last_out(b), to)->params = NULL; }

/* TFLite's output size and leading pad of SAME / VALID */
static uint32_t out_size(uint32_t in, uint32_t f, uint32_t s, int same, uint16_t *pad) {
  if (same) {
    const uint32_t o = (in + s - 1) / s;
    const int64_t tot = (int64_t)(o - 1) * s + f - in;
    *pad = (uint16_t)(tot > 0 ? tot / 2 : 0);
    return o;
  }
  *pad = 0;
  return (in - f) / s + 1;
}

static void window(model_b *b, uint8_t kind, uint32_t fh, uint32_t fw, uint32_t s, int same, uint32_t out_c, int w) {
  const qbnn_dims in = last_out(b);
  uint16_t pt, pl;
  const uint32_t oh = out_size(in.h, fh, s, same, &pt), ow = out_size(in.w, fw, s, same, &pl);
  qbnn_op *op = add(b, kind, in, dims(oh, ow, kind == QBNN_OP_DEPTHWISE_CONV_2D ? in.c * out_c : out_c));
  if (kind == QBNN_OP_MAX_POOL_2D || kind == QBNN_OP_AVERAGE_POOL_2D) {
    qbnn_pool_params *P = &b->p[b->n - 1].pool;
    memset(P, 0, sizeof *P);
    P->filter_h = (uint16_t)fh, P->filter_w = (uint16_t)fw, P->stride_h = P->stride_w = (uint16_t)s;
    P->pad_top = pt, P->pad_left = pl, P->act_min = -128, P->act_max = 127;
    return;
  }
  qbnn_conv_params *P = &b->p[b->n - 1].conv;
  P->filter_h = (uint16_t)fh, P->filter_w = (uint16_t)fw, P->stride_h = P->stride_w = (uint16_t)s;
  P->pad_top = pt, P->pad_left = pl;
  if (kind == QBNN_OP_CONV_2D) layer(b, &P->w, out_c, (uint64_t)fh * fw * in.c, w);
  else layer(b, &P->w, 1, (uint64_t)fh * fw * op->out.c, w); /* out_c: the depth multiplier */
}

/* a constant int4 FULLY_CONNECTED head on the last tensor (its cols: the elements mod 2^32) */
static void head(model_b *b) { fc(b, CLASSES, W_I4); }

static void input(model_b *b, qbnn_dims in) { b->in0 = in; }

typedef void (*build_fn)(model_b *b, int w, const void *arg);
typedef struct {
  uint32_t h, w, c, f1, f2;
} shape5;

/* ---- builders: arg is a shape5 ---------------------------------------------------------------------- */
static void b_fc(model_b *b, int w, const void *a) {
  const shape5 *s = a;
  input(b, dims(s->h, s->w, s->c));
  fc(b, CLASSES, w);
}
static void b_pool(model_b *b, int kind, const shape5 *s) { /* pool f1 x f2 VALID with stride f1 on h x w x c */
  input(b, dims(s->h, s->w, s->c));
  window(b, (uint8_t)kind, s->f1, s->f2, s->f1, 0, s->c, 0);
  head(b);
}
static void b_max(model_b *b, int w, const void *a) { (void)w, b_pool(b, QBNN_OP_MAX_POOL_2D, a); }
static void b_avg(model_b *b, int w, const void *a) { (void)w, b_pool(b, QBNN_OP_AVERAGE_POOL_2D, a); }
static void b_reshape(model_b *b, int w, const void *a) { /* (elements mod 2^32) -> h x w x c */
  const shape5 *s = a;
  const qbnn_dims to = dims(s->h, s->w, s->c);
  const uint32_t e = (uint32_t)elems(to);
  input(b, e % 65536u == 0 ? dims(e / 65536u, 256, 256) : dims(1, 1, e)); /* as many elements when they fit */
  reshape(b, to);
  (void)w;
  head(b);
}
static void b_conv(model_b *b, int w, const void *a) { /* f1 x f2 SAME conv, 1 output channel */
  const shape5 *s = a;
  input(b, dims(s->h, s->w, s->c));
  window(b, QBNN_OP_CONV_2D, s->f1, s->f2, 1, 1, 1, w);
  head(b);
}
static void b_conv10(model_b *b, int w, const void *a) { /* f1 x f2 SAME conv straight to the classes */
  const shape5 *s = a;
  input(b, dims(s->h, s->w, s->c));
  window(b, QBNN_OP_CONV_2D, s->f1, s->f2, 1, 1, CLASSES, w);
}
static void b_dw(model_b *b, int w, const void *a) { /* f1 x f2 SAME depthwise, depth multiplier 1 */
  const shape5 *s = a;
  input(b, dims(s->h, s->w, s->c));
  window(b, QBNN_OP_DEPTHWISE_CONV_2D, s->f1, s->f2, 1, 1, 1, w);
  head(b);
}
static void b_dw10(model_b *b, int w, const void *a) { /* f1 x f2 SAME depthwise on c = 2: multiplier 5 */
  const shape5 *s = a;
  input(b, dims(s->h, s->w, s->c));
  window(b, QBNN_OP_DEPTHWISE_CONV_2D, s->f1, s->f2, 1, 1, CLASSES / s->c, w);
}
static void b_conv_stride(model_b *b, int w, const void *a) { /* 1 x 1 VALID conv with stride f1 */
  const shape5 *s = a;
  input(b, dims(s->h, s->w, s->c));
  window(b, QBNN_OP_CONV_2D, 1, 1, s->f1, 0, 1, w);
  head(b);
}

/* two f1 x 1 SAME convs on 1 x 65535 x 1, Bayesian then constant int8: each one's padded operands (f1 * 65535
   int16) fit the arena bound, their sum (the first Bayesian op's operands and the other ops') does not */
static void b_conv_pair(model_b *b, int w, const void *a) {
  const shape5 *s = a;
  (void)w;
  input(b, dims(s->h, s->w, s->c));
  window(b, QBNN_OP_CONV_2D, s->f1, s->f2, 1, 1, 1, W_BAYES);
  window(b, QBNN_OP_CONV_2D, s->f1, s->f2, 1, 1, 1, W_I8);
  head(b);
}

typedef struct {
  const char *name;
  build_fn build;
  int weights;
  shape5 shape;
  int expect;
} sweep_case;

/* products: 2^16 = 256 * 256; 2^31 = 32768^2 * 2; 2^31 + 2 = 33025 * 65026; 2^32 = 4096^2 * 256;
   2^32 + 4 = 33025 * 65026 * 2; 2^32 + 4096 = 61681 * 4096 * 17; 2^32 - 2^17 + 1 = 65535^2; 65535^3 ~ 2^48 */
#define TENSORS(KIND, FN, W)                                                                                   \
  {KIND "_t65536", FN, W, {256, 256, 1, 1, 1}, RUN}, {KIND "_t65538", FN, W, {2, 32769, 1, 1, 1}, REFUSE},    \
      {KIND "_t2_31", FN, W, {32768, 32768, 2, 1, 1}, REFUSE},                                                 \
      {KIND "_t2_31p2", FN, W, {33025, 65026, 1, 1, 1}, REFUSE},                                               \
      {KIND "_t2_32m", FN, W, {65535, 65535, 1, 1, 1}, REFUSE},                                                \
      {KIND "_t2_32", FN, W, {4096, 4096, 256, 1, 1}, REFUSE},                                                 \
      {KIND "_t2_32p4", FN, W, {33025, 65026, 2, 1, 1}, REFUSE},                                               \
      {KIND "_t2_32p4096", FN, W, {61681, 4096, 17, 1, 1}, REFUSE},                                            \
      {KIND "_t2_48", FN, W, {65535, 65535, 65535, 1, 1}, REFUSE}
/* filter sizes: a SAME f1 x f2 filter on 1 x 1 x c */
#define FILTERS(KIND, FN, W)                                                                          \
  {KIND "_f2_31", FN, W, {1, 1, 2, 32768, 32768}, REFUSE},                                            \
      {KIND "_f2_32m", FN, W, {1, 1, 1, 65535, 65535}, REFUSE},                                       \
      {KIND "_f2_32p4", FN, W, {1, 1, 2, 33025, 65026}, REFUSE},                                      \
      {KIND "_f2_47", FN, W, {1, 1, 32768, 65535, 65535}, REFUSE}
/* padded operands: a SAME f1 x 1 filter on 1 x 65535 x 1: f1 * 65535 int16 operands */
#define OPERANDS(KIND, FN, W)                                                                                  \
  {KIND "_x3x65535", FN, W, {1, 65535, 1, 3, 1}, RUN}, {KIND "_x2_30", FN, W, {1, 65535, 1, 16385, 1}, REFUSE}, \
      {KIND "_x2_31", FN, W, {1, 65535, 1, 32769, 1}, REFUSE},                                                 \
      {KIND "_x2_32m", FN, W, {1, 65535, 1, 65535, 1}, REFUSE}

static const sweep_case kCases[] = {
    TENSORS("fc_bayes", b_fc, W_BAYES), TENSORS("fc_i4", b_fc, W_I4),
    {"fc_i8_t65536_acc_bound", b_fc, W_I8, {256, 256, 1, 1, 1}, REFUSE},
    {"fc_i8_t2_32p4", b_fc, W_I8, {33025, 65026, 2, 1, 1}, REFUSE},
    TENSORS("max_pool", b_max, 0), TENSORS("avg_pool", b_avg, 0), TENSORS("reshape", b_reshape, 0),
    TENSORS("conv_bayes", b_conv, W_BAYES), TENSORS("conv_i8", b_conv, W_I8), TENSORS("dw_bayes", b_dw, W_BAYES),
    TENSORS("dw_i4", b_dw, W_I4),
    FILTERS("conv_bayes", b_conv10, W_BAYES), FILTERS("conv_i8", b_conv10, W_I8), FILTERS("conv_i4", b_conv10, W_I4),
    FILTERS("dw_bayes", b_dw10, W_BAYES), FILTERS("dw_i8", b_dw10, W_I8), FILTERS("dw_i4", b_dw10, W_I4),
    OPERANDS("conv_bayes", b_conv, W_BAYES), OPERANDS("conv_i8", b_conv, W_I8), OPERANDS("conv_i4", b_conv, W_I4),
    OPERANDS("dw_bayes", b_dw, W_BAYES), OPERANDS("dw_i8", b_dw, W_I8), OPERANDS("dw_i4", b_dw, W_I4),
    /* windows and strides of 65535 (TFLite's size rules in 32-bit arithmetic) */
    {"max_pool_window_65535", b_max, 0, {1, 65535, 1, 1, 65535}, RUN},
    {"avg_pool_stride_65535", b_avg, 0, {65535, 1, 1, 65535, 1}, RUN},
    {"conv_i8_stride_65535", b_conv_stride, W_I8, {1, 65535, 1, 65535, 1}, RUN},
    /* the arena as a whole: 2 x 2^31 - 327 kB of operands */
    {"conv_pair_arena_2_32m", b_conv_pair, 0, {1, 65535, 1, 16383, 1}, REFUSE},
    {"conv_pair_x3x65535", b_conv_pair, 0, {1, 65535, 1, 3, 1}, RUN},
};

static int run_case(const sweep_case *c) {
  model_b b;
  memset(&b, 0, sizeof b);
  c->build(&b, c->weights, &c->shape);
  qbnn_model_t m;
  memset(&m, 0, sizeof m);
  m.format_version = QBNN_FORMAT_VERSION, m.num_ops = (uint16_t)b.n, m.num_classes = CLASSES, m.ops = b.ops;
  m.softmax_multiplier = 1 << 30, m.softmax_left_shift = 20, m.softmax_diff_min = -1000;
  const uint32_t need = qbnn_arena_bytes(&m);
  int8_t *in = (int8_t *)alloc(&b, elems(b.ops[0].in));
  uint64_t *arena = (uint64_t *)alloc(&b, need);
  int fail = 0, code = 0;
  for (int kernel = QBNN_KERNEL_REF; kernel <= QBNN_KERNEL_SIMD && !fail; ++kernel) {
    qbnn_runtime_t rt;
    code = qbnn_init(&rt, &m, arena, need, 1, kernel);
    if (code != QBNN_OK) {
      fail = c->expect == RUN || need != 0 || code != QBNN_RT_ERR_LIMITS;
      break;
    }
    /* accepted: run it (an access past the declared arrays is a sanitizer report) */
    qbnn_result_t res;
    int8_t q[QBNN_MAX_CLASSES];
    const int e1 = qbnn_predict(&rt, in, QBNN_MODE_MC, 2, &res), e2 = qbnn_forward_mean(&rt, in, q);
    fail = c->expect == REFUSE || b.truncated || e1 != QBNN_OK || e2 != QBNN_OK;
  }
  printf("%s %s %s code=%d arena=%u\n", fail ? "FAIL" : "ok", c->name, code ? "refused" : "ran", code, need);
  for (int i = 0; i < b.nmem; ++i) free(b.mem[i]);
  return fail;
}

int main(int argc, char **argv) {
  int bad = 0, n = 0;
  for (int k = 0; k < 16; ++k) g_sigma_q[k] = 1 << 10;
  for (unsigned i = 0; i < sizeof kCases / sizeof kCases[0]; ++i) {
    if (argc > 1 && strcmp(argv[1], kCases[i].name) != 0) continue;
    fflush(stdout);
    bad += run_case(&kCases[i]);
    ++n;
  }
  printf("SIZE SWEEP %s: %d of %d cases failed\n", bad ? "FAILED" : "PASSED", bad, n);
  return bad || n == 0;
}
