/* The bottom of the runtime: the op table, every check qbnn_init makes, and the arena plan (qbnn_plan.h's
   macros: the generated QBNN_ARENA_BYTES is the same expression). Names no op kind: each kernel's prepare checks
   its own parameters and reports its scratch and whether it is a dense layer (qbnn_op_needs). */
#include <string.h>

#include "qbnn_modes.h"
#include "qbnn_ops.h"
#include "qbnn_runtime_internal.h"

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
const qbnn_op_kernel qbnn__kernels[QBNN_OP_COUNT] = {
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

/* The arena plan's arguments (QBNN_PLAN_BYTES): element counts of the prefix output and the activations (int8), of
   the operands and the filter (int16); HYBRID's and PFP's scratch in bytes (0: the model cannot run the mode). In
   64 bits: check_model bounds the total by QBNN_MAX_ARENA. */
typedef struct {
  uint64_t prefix, act, x_first, x_op, filter, hybrid, pfp;
  uint16_t first_bayesian;
} plan_t;

static uint64_t plan_total(const plan_t *p) {
  return QBNN_PLAN_BYTES(p->prefix, p->act, p->x_first, p->x_op, p->filter, p->hybrid, p->pfp);
}

/* A dense layer the modes can take exact moments of (SPEC 11): Bayesian I4_FUSED or PACKED, one scale, no bias, its
   moment table, at most 65,536 columns (the nonzero-input list holds uint16 indices). */
static int moments_ok(const qbnn_rt_layer *L) {
  return L && L->core.mu && !L->bias && !L->multipliers &&
         (L->core.layout == QBNN_LAYOUT_I4_FUSED || L->core.layout == QBNN_LAYOUT_PACKED) && L->moments &&
         L->core.cols <= 65536u;
}

/* Everything qbnn_init checks, and the arena plan. */
static int check_model(const qbnn_model_t *m, int kernel, plan_t *plan) {
  memset(plan, 0, sizeof *plan);
  if (!m || !m->ops) return QBNN_ERR_NULL;
  if (m->format_version != QBNN_FORMAT_VERSION) return QBNN_RT_ERR_FORMAT;
  if (m->num_ops < 1 || m->num_ops > QBNN_MAX_OPS) return QBNN_RT_ERR_LIMITS;
  if (m->num_classes < 1 || m->num_classes > QBNN_MAX_CLASSES) return QBNN_RT_ERR_LIMITS;
  uint32_t seen_streams = 0;
  /* the modes: the first Bayesian op's [rows0, cols0] (HYBRID) and, PFP, the widest layer from it on and the widest
     input after it, while every op from it on is a dense layer with moments */
  int hybrid = 0, pfp = 0;
  uint32_t rows0 = 0, cols0 = 0, max_rows = 0, max_cols = 0;
  plan->first_bayesian = m->num_ops;
  for (int i = 0; i < m->num_ops; ++i) {
    const qbnn_op *op = &m->ops[i];
    if (op->kind <= QBNN_OP_NONE || op->kind >= QBNN_OP_COUNT) return QBNN_RT_ERR_OP;
    const uint64_t n_in = qbnn__elems64(op->in), n_out = qbnn__elems64(op->out);
    if (n_in == 0 || n_out == 0 || n_in > QBNN_MAX_TENSOR || n_out > QBNN_MAX_TENSOR) return QBNN_RT_ERR_LIMITS;
    if (i > 0) {
      const qbnn_dims prev = m->ops[i - 1].out;
      if (prev.h != op->in.h || prev.w != op->in.w || prev.c != op->in.c) return QBNN_RT_ERR_CHAIN;
    }
    qbnn_op_needs needs = {0, 0, -1, 0};
    const int err = qbnn__kernels[op->kind].prepare(op, kernel, i == m->num_ops - 1, &needs);
    if (err != QBNN_OK) return err;
    if (needs.stream >= 0) { /* a Bayesian op; stream < QBNN_MAX_STREAMS (qbnn__check_weighted) */
      if (seen_streams & (1u << needs.stream)) return QBNN_RT_ERR_OP; /* two ops on one stream */
      seen_streams |= 1u << needs.stream;
      if (plan->first_bayesian == m->num_ops) {
        plan->first_bayesian = (uint16_t)i;
        plan->x_first = needs.x_elems;
        needs.x_elems = 0;
        hybrid = pfp = moments_ok(needs.dense);
        if (hybrid) rows0 = needs.dense->core.rows, cols0 = needs.dense->core.cols;
      }
    }
    if (plan->first_bayesian < m->num_ops && pfp) {
      pfp = moments_ok(needs.dense);
      if (pfp && needs.dense->core.rows > max_rows) max_rows = needs.dense->core.rows;
      if (pfp && i > plan->first_bayesian && needs.dense->core.cols > max_cols) max_cols = needs.dense->core.cols;
    }
    if (needs.x_elems > plan->x_op) plan->x_op = needs.x_elems;
    if (needs.filter_elems > plan->filter) plan->filter = needs.filter_elems;
    if (n_out > plan->act) plan->act = n_out;
  }
  const qbnn_dims last = m->ops[m->num_ops - 1].out;
  if (qbnn__elems64(last) != m->num_classes) return QBNN_RT_ERR_CHAIN;
  /* softmax: (uint32)diff << left_shift needs a shift below 32; diff_min <= 0 keeps the row's
     maximum in the sum (a zero sum would shift by 32 in GetReciprocal) */
  if (m->softmax_multiplier < 0 || m->softmax_left_shift < 0 || m->softmax_left_shift > 31 || m->softmax_diff_min > 0)
    return QBNN_RT_ERR_RANGE;
  plan->prefix = plan->first_bayesian > 0 ? qbnn__elems64(m->ops[plan->first_bayesian - 1].out) : 0;
  /* O(rows + cols) of dense layers within QBNN_MAX_TENSOR */
  plan->hybrid = hybrid ? QBNN_HYBRID_BYTES(rows0, cols0) : 0;
  plan->pfp = pfp ? QBNN_PFP_BYTES(rows0, cols0, max_rows, max_cols) : 0;
  /* each count < 2^49 (prepare): no product in the plan wraps */
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
  /* the pieces in QBNN_PLAN_BYTES's order, every one below QBNN_MAX_ARENA bytes (check_model) */
  uint8_t *a = (uint8_t *)arena;
  rt->prefix = (int8_t *)a;
  rt->jk = a += QBNN_R8(p.prefix);
  a += QBNN_JK_BYTES;
  rt->pfp = p.pfp ? a : 0;
  rt->act[0] = (int8_t *)a;
  rt->act[1] = (int8_t *)(a += QBNN_R8(p.act));
  rt->x_op = (int16_t *)(void *)(a += QBNN_R8(p.act));
  rt->filter = (int16_t *)(void *)(a += QBNN_R8(2u * p.x_op));
  rt->x_first = (int16_t *)(void *)(a += QBNN_R8(2u * p.filter));
  rt->hybrid = p.hybrid ? a : 0;
  rt->model = model;
  rt->kernel = kernel;
  rt->first_bayesian = p.first_bayesian;
  qbnn_seed(rt, seed);
  return QBNN_OK;
}
