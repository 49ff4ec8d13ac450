/* The op-table runtime: checks and arena planning once in qbnn_init, the deterministic prefix once per input,
   the Bayesian tail once per Monte-Carlo sample; see qbnn_runtime.h and tflite_export/SPEC.md. */
#include "qbnn_runtime.h"

#include <math.h>
#include <string.h>

#include "qbnn_fixedpoint.h"
#include "qbnn_ops.h"
#include "qbnn_runtime_internal.h"
#include "qbnn_sampler.h"

/* The op table: kind -> (prepare, eval), one entry per line of qbnn_op_list.h. */
typedef struct {
  int (*prepare)(const qbnn_op *op, int kernel, int is_last, qbnn_op_needs *needs);
  void (*eval)(const qbnn_op *op, const int8_t *in, int8_t *out, qbnn_op_ctx *ctx);
} qbnn_op_kernel;

/* QBNN_OP_SUBSET (a bundle, tflite_export/bundle.py): the generated qbnn_ops_used.h lists every kind of
   qbnn_op_list.h, those the model does not use as QBNN_OP_ABSENT(KIND): their kernels are not compiled in, and a
   model holding one is refused (QBNN_RT_ERR_OP), as TFLM's MicroMutableOpResolver links only the ops it adds. */
#if !defined(QBNN_OP_SUBSET) && defined(__has_include) /* build systems that take no -D (Arduino) */
#if __has_include("qbnn_ops_used.h")
#define QBNN_OP_SUBSET 1
#endif
#endif
#if defined(QBNN_OP_SUBSET)
static int qbnn__absent_prepare(const qbnn_op *op, int kernel, int is_last, qbnn_op_needs *needs) {
  (void)op, (void)kernel, (void)is_last, (void)needs;
  return QBNN_RT_ERR_OP;
}
#define QBNN_OP_ABSENT(KIND) [QBNN_OP_##KIND] = {qbnn__absent_prepare, 0},
#define QBNN_OP_TABLE "qbnn_ops_used.h"
#else
#define QBNN_OP_TABLE "qbnn_op_list.h"
#endif
#define QBNN_OP(KIND, name) [QBNN_OP_##KIND] = {qbnn_op_##name##_prepare, qbnn_op_##name##_eval},
static const qbnn_op_kernel kKernels[QBNN_OP_COUNT] = {
#include QBNN_OP_TABLE
};
#undef QBNN_OP

/* Compile-time limits (C99 static assertions): the count sums A[c] <= 255 * classes * samples fit uint32;
   softmax sums of at most 256 classes keep RoundingDivideByPOT's exponent <= 31. */
typedef char qbnn_assert_counts[(255LL * QBNN_MAX_CLASSES * QBNN_MAX_SAMPLES <= 0xFFFFFFFFLL) ? 1 : -1];
typedef char qbnn_assert_classes[(QBNN_MAX_CLASSES <= 256) ? 1 : -1];
typedef char qbnn_assert_streams[(QBNN_MAX_STREAMS <= 32) ? 1 : -1]; /* check_model's stream bit set */
/* arena offsets and sizes fit uint32 (qbnn_arena_bytes), int16 scratch indices int32 */
typedef char qbnn_assert_arena[(QBNN_MAX_ARENA <= 0x7FFFFFF8u && QBNN_MAX_ARENA % 8u == 0) ? 1 : -1];
/* the modes' scratch sizes (uint32, a few bytes per row or column of a tensor) and the kernels' int32 activation
   indices cannot wrap */
typedef char qbnn_assert_tensor[(QBNN_MAX_TENSOR <= (1L << 28)) ? 1 : -1];

static int resolve_kernel(int kernel) {
  if (kernel == QBNN_KERNEL_AUTO) return QBNN_HAVE_DSP ? QBNN_KERNEL_SIMD : QBNN_KERNEL_LUT;
  return kernel;
}

void qbnn_seed(qbnn_runtime_t *rt, uint32_t seed) {
  if (!rt) return;
  for (uint32_t l = 0; l < QBNN_MAX_STREAMS; ++l) qbnn_stream_init(&rt->streams[l], seed, l);
}

/* The arena plan: byte sizes of rt's pieces, in this order: prefix (the deterministic prefix's output), act x2,
   x_op, filter, then x_first, which the HYBRID mode's scratch overlaps (it does not build those operands); PFP's
   scratch overlaps everything after the prefix output (it runs none of the MC pieces once the prefix has run).
   hybrid / pfp: 0 when the model cannot run the mode. In 64 bits: check_model bounds the total by QBNN_MAX_ARENA. */
typedef struct {
  uint64_t act, prefix, x_first, x_op, filter, hybrid, pfp;
  uint16_t first_bayesian;
} plan_t;

static uint64_t max_u64(uint64_t a, uint64_t b) { return a > b ? a : b; }

static uint64_t plan_total(const plan_t *p) {
  return p->prefix + max_u64(2 * p->act + p->x_op + p->filter + max_u64(p->x_first, p->hybrid), p->pfp);
}

/* Everything qbnn_init checks, and the arena plan. */
static int check_model(const qbnn_model_t *m, int kernel, plan_t *plan) {
  memset(plan, 0, sizeof *plan);
  if (!m || !m->ops) return QBNN_ERR_NULL;
  if (m->format_version != QBNN_FORMAT_VERSION) return QBNN_RT_ERR_FORMAT;
  if (m->num_ops < 1 || m->num_ops > QBNN_MAX_OPS) return QBNN_RT_ERR_LIMITS;
  if (m->num_classes < 1 || m->num_classes > QBNN_MAX_CLASSES) return QBNN_RT_ERR_LIMITS;
  uint32_t seen_streams = 0;
  uint64_t x_first = 0, x_op = 0, filter = 0, act = 0;
  plan->first_bayesian = m->num_ops;
  for (int i = 0; i < m->num_ops; ++i) {
    const qbnn_op *op = &m->ops[i];
    if (op->kind <= QBNN_OP_NONE || op->kind >= QBNN_OP_COUNT) return QBNN_RT_ERR_OP;
    if (op->kind != QBNN_OP_RESHAPE && !op->params) return QBNN_ERR_NULL;
    const uint64_t n_in = qbnn__elems64(op->in), n_out = qbnn__elems64(op->out);
    if (n_in == 0 || n_out == 0 || n_in > QBNN_MAX_TENSOR || n_out > QBNN_MAX_TENSOR) return QBNN_RT_ERR_LIMITS;
    if (i > 0) {
      const qbnn_dims prev = m->ops[i - 1].out;
      if (prev.h != op->in.h || prev.w != op->in.w || prev.c != op->in.c) return QBNN_RT_ERR_CHAIN;
    }
    qbnn_op_needs needs = {0, 0, -1};
    const int err = kKernels[op->kind].prepare(op, kernel, i == m->num_ops - 1, &needs);
    if (err != QBNN_OK) return err;
    if (needs.stream >= 0) { /* a Bayesian op; stream < QBNN_MAX_STREAMS (qbnn__check_weighted) */
      if (seen_streams & (1u << needs.stream)) return QBNN_RT_ERR_OP; /* two ops on one stream */
      seen_streams |= 1u << needs.stream;
      if (plan->first_bayesian == m->num_ops) {
        plan->first_bayesian = (uint16_t)i;
        x_first = needs.x_elems;
        needs.x_elems = 0;
      }
    }
    if (needs.x_elems > x_op) x_op = needs.x_elems;
    if (needs.filter_elems > filter) filter = needs.filter_elems;
    if (n_out > act) act = n_out;
  }
  const qbnn_dims last = m->ops[m->num_ops - 1].out;
  if (qbnn__elems64(last) != m->num_classes) return QBNN_RT_ERR_CHAIN;
  /* softmax: (uint32)diff << left_shift needs a shift below 32; diff_min <= 0 keeps the row's
     maximum in the sum (a zero sum would shift by 32 in GetReciprocal) */
  if (m->softmax_multiplier < 0 || m->softmax_left_shift < 0 || m->softmax_left_shift > 31 || m->softmax_diff_min > 0)
    return QBNN_RT_ERR_RANGE;
  plan->act = qbnn__round8_64(act);
  plan->prefix = plan->first_bayesian > 0 ? qbnn__round8_64(qbnn__elems64(m->ops[plan->first_bayesian - 1].out)) : 0;
  plan->x_first = qbnn__round8_64(2 * x_first); /* each count < 2^49 (prepare): no product wraps */
  plan->x_op = qbnn__round8_64(2 * x_op);
  plan->filter = qbnn__round8_64(2 * filter);
  uint32_t hybrid, pfp; /* O(rows + cols) of dense layers within QBNN_MAX_TENSOR */
  qbnn__modes_plan(m, plan->first_bayesian, &hybrid, &pfp);
  plan->hybrid = hybrid, plan->pfp = pfp;
  return plan_total(plan) <= QBNN_MAX_ARENA ? QBNN_OK : QBNN_RT_ERR_LIMITS;
}

uint32_t qbnn_arena_bytes(const qbnn_model_t *model) {
  plan_t p;
  return check_model(model, QBNN_KERNEL_REF, &p) == QBNN_OK ? (uint32_t)plan_total(&p) : 0;
}

uint32_t qbnn_input_size(const qbnn_model_t *model) {
  if (!model || !model->ops || !model->num_ops || qbnn__elems64(model->ops[0].in) > QBNN_MAX_TENSOR) return 0;
  return qbnn__elems(model->ops[0].in);
}

int qbnn_init(qbnn_runtime_t *rt, const qbnn_model_t *model, void *arena, uint32_t arena_bytes, uint32_t seed,
              int kernel) {
  if (!rt) return QBNN_ERR_NULL;
  memset(rt, 0, sizeof *rt); /* uninitialised until every check has passed */
  if (!model) return QBNN_ERR_NULL;
  if (kernel < QBNN_KERNEL_AUTO || kernel > QBNN_KERNEL_SIMD) return QBNN_RT_ERR_KERNEL;
  kernel = resolve_kernel(kernel);
  plan_t p;
  const int err = check_model(model, kernel, &p);
  if (err != QBNN_OK) return err;
  if (!arena || ((uintptr_t)arena & 7u) != 0 || arena_bytes < plan_total(&p)) return QBNN_RT_ERR_ARENA;
  uint8_t *a = (uint8_t *)arena;
  rt->prefix = (int8_t *)a; /* every piece below QBNN_MAX_ARENA bytes (check_model) */
  a += p.prefix;
  rt->pfp = p.pfp ? a : 0;
  rt->act[0] = (int8_t *)a;
  rt->act[1] = (int8_t *)(a += p.act);
  rt->x_op = (int16_t *)(void *)(a += p.act);
  rt->filter = (int16_t *)(void *)(a += p.x_op);
  rt->x_first = (int16_t *)(void *)(a += p.filter);
  rt->hybrid = p.hybrid ? a : 0;
  rt->model = model;
  rt->kernel = kernel;
  rt->first_bayesian = p.first_bayesian;
  qbnn_seed(rt, seed);
  return QBNN_OK;
}

/* Ops first..last-1 from x (op `first`'s input) through the ping-pong buffers; the last op writes y_last when
   given (the prefix's output, kept for the samples). `x_ready`: the first Bayesian op's operands are already in
   rt->x_first (in: may be reused; out: now built). Returns the last op's output. */
static const int8_t *run_ops(qbnn_runtime_t *rt, int first, int last, const int8_t *x, int8_t *y_last, int mean,
                             int *x_ready) {
  const qbnn_model_t *m = rt->model;
  qbnn_op_ctx ctx;
  ctx.rt = rt;
  ctx.mean = mean;
  for (int i = first; i < last; ++i) {
    const qbnn_op *op = &m->ops[i];
    int8_t *y = i == last - 1 && y_last ? y_last : rt->act[(i - first) & 1];
    const int is_first = i == rt->first_bayesian;
    ctx.x = is_first ? rt->x_first : rt->x_op;
    ctx.x_ready = is_first && x_ready ? *x_ready : 0;
    kKernels[op->kind].eval(op, x, y, &ctx);
    if (is_first && x_ready) *x_ready = ctx.x_ready;
    x = y;
  }
  return x;
}

/* The deterministic prefix: its output in rt->prefix (`input` itself when the first op is Bayesian). */
static const int8_t *run_prefix(qbnn_runtime_t *rt, const int8_t *input, int mean) {
  return run_ops(rt, 0, rt->first_bayesian, input, rt->prefix, mean, 0);
}

/* Ops first..num_ops-1 from x, then the softmax. */
static void run_from(qbnn_runtime_t *rt, int first, const int8_t *x, int8_t *softmax_out, int mean, int *x_ready) {
  const qbnn_model_t *m = rt->model;
  const int8_t *logits = run_ops(rt, first, m->num_ops, x, 0, mean, x_ready);
  qbnn_softmax_int8(logits, m->num_classes, m->softmax_multiplier, m->softmax_left_shift, m->softmax_diff_min,
                    softmax_out);
}

/* The Bayesian tail: the ops from the first Bayesian one. */
static void run_tail(qbnn_runtime_t *rt, const int8_t *x, int8_t *softmax_out, int mean, int *x_ready) {
  run_from(rt, rt->first_bayesian, x, softmax_out, mean, x_ready);
}

const int8_t *qbnn__run_prefix(qbnn_runtime_t *rt, const int8_t *input) { return run_prefix(rt, input, 0); }

int qbnn__run_tail(qbnn_runtime_t *rt, int first_op, const int8_t *in, int8_t *softmax_out) {
  if (!rt || !rt->model || !in || !softmax_out) return QBNN_ERR_NULL;
  const qbnn_model_t *m = rt->model;
  if (first_op < 0 || first_op > m->num_ops) return QBNN_RT_ERR_LIMITS;
  if (first_op < m->num_ops && in == rt->act[0]) { /* op first_op writes act[0]: move its input to act[1] */
    memcpy(rt->act[1], in, qbnn__elems(m->ops[first_op].in));
    in = rt->act[1];
  }
  run_from(rt, first_op, in, softmax_out, 0, 0);
  return QBNN_OK;
}

int qbnn_forward(qbnn_runtime_t *rt, const int8_t *input, int8_t *softmax_out) {
  if (!rt || !input || !softmax_out) return QBNN_ERR_NULL;
  if (!rt->model) return QBNN_RT_ERR_UNINIT;
  run_tail(rt, run_prefix(rt, input, 0), softmax_out, 0, 0);
  return QBNN_OK;
}

int qbnn_forward_mean(qbnn_runtime_t *rt, const int8_t *input, int8_t *softmax_out) {
  if (!rt || !input || !softmax_out) return QBNN_ERR_NULL;
  if (!rt->model) return QBNN_RT_ERR_UNINIT;
  run_tail(rt, run_prefix(rt, input, 1), softmax_out, 1, 0);
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
  const int8_t *x = run_prefix(rt, input, 0); /* deterministic: once per input */
  int x_ready = 0;
  /* float only (no soft-double code on single-precision FPUs); Neumaier-compensated so that the
     sum of S entropies keeps float32 accuracy for any S (SPEC 7: within 1e-5 nats) */
  float entropy_sum[2] = {0.0f, 0.0f};
  uint32_t jk[QBNN_JK_GROUPS][QBNN_MAX_CLASSES]; /* SPEC 7.1's group sums (zeroed by qbnn__jk_add_codes) */
  for (int s = 0; s < num_samples; ++s) {
    int8_t q[QBNN_MAX_CLASSES];
    run_tail(rt, x, q, 0, &x_ready);
    qbnn__accumulate(q, nc, res->counts);
    qbnn__add_entropy(entropy_sum, qbnn__sample_entropy(q, nc));
    qbnn__jk_add_codes(jk, s, num_samples, q, nc);
  }
  qbnn__finish(res->counts, num_samples, nc, entropy_sum, res);
  qbnn__jk_finish_counts(jk, num_samples, nc, res);
  return QBNN_OK;
}
