/* The passes of the op-table runtime (over qbnn_plan.c's checked model and cut arena): the deterministic prefix
   once per input, the Bayesian tail once per Monte-Carlo sample, the mean pass, and SPEC 7's statistics; see
   qbnn_runtime.h and tflite_export/SPEC.md. */
#include "qbnn_runtime.h"

#include <math.h>
#include <string.h>

#include "qbnn_fixedpoint.h"
#include "qbnn_ops.h"
#include "qbnn_runtime_internal.h"
#include "qbnn_sampler.h"

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
    qbnn__kernels[op->kind].eval(op, x, y, &ctx);
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

void qbnn__run_sample(qbnn_runtime_t *rt, const int8_t *x, int8_t *softmax_out, int *x_ready) {
  run_tail(rt, x, softmax_out, 0, x_ready);
}

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
