/* Private interface between the runtime's files, each calling only the ones below it:
     qbnn_predict.c   qbnn_predict: the MC loop and the dispatch to the modes
     qbnn_modes.c     HYBRID, PFP and SPEC 7.1's jackknife
     qbnn_runtime.c   the passes (prefix, tail, mean) and SPEC 7's statistics
     qbnn_plan.c      the op table, qbnn_init's checks and the arena plan
   over the kernels (micro/ops, qbnn_weighted.c). Not part of the public API. */
#ifndef QBNN_RUNTIME_INTERNAL_H_
#define QBNN_RUNTIME_INTERNAL_H_
#include <math.h>
#include <stdint.h>

#include "qbnn_runtime.h"

/* Arena pieces are 8-byte aligned: sizes round up to 8. */
static inline uint32_t qbnn__round8(uint32_t bytes) { return (bytes + 7u) & ~7u; }

/* ---- qbnn_runtime.c ---- */
/* Run ops first_op..num_ops-1 on `in` (first_op's int8 input), sampling their weights from their streams
   exactly as an MC pass does, then the int8 softmax. first_op == num_ops: softmax only. */
int qbnn__run_tail(qbnn_runtime_t *rt, int first_op, const int8_t *in, int8_t *softmax_out);

/* The deterministic prefix (ops before the first Bayesian one) on `input`, once: its output (rt->prefix), or
   `input` itself when the first op is Bayesian. */
const int8_t *qbnn__run_prefix(qbnn_runtime_t *rt, const int8_t *input);

/* One MC sample from the prefix's output x: the Bayesian tail, then the softmax. *x_ready: the first Bayesian op's
   operands are already built (in: may be reused; out: now built); 0 on a new input. */
void qbnn__run_sample(qbnn_runtime_t *rt, const int8_t *x, int8_t *softmax_out, int *x_ready);

/* counts[c] += softmax_codes[c] + 128 (SPEC 7's A[c]). */
void qbnn__accumulate(const int8_t *softmax_codes, int num_classes, uint32_t *counts);

/* Entropy (nats, float32) of one sample's P_s[c] = q_s[c] + 128 (SPEC 7). */
float qbnn__sample_entropy(const int8_t *softmax_codes, int num_classes);

/* entropy_sum[0] += h with Neumaier compensation in entropy_sum[1]. */
static inline void qbnn__add_entropy(float *entropy_sum, float h) {
  const float s = entropy_sum[0], t = s + h;
  entropy_sum[1] += fabsf(s) >= fabsf(h) ? (s - t) + h : (h - t) + s;
  entropy_sum[0] = t;
}

/* SPEC 7's results from the count sums A[c] and the compensated sum of the S per-sample entropies. */
void qbnn__finish(const uint32_t *counts, int num_samples, int num_classes, const float *entropy_sum,
                  qbnn_result_t *result);

/* ---- qbnn_modes.c ---- */
/* SPEC 7.1's jackknife: group sums of sample s's P_s[c] (MC, HYBRID) or float p_c (PFP); from the group sums, the
   correction and the corrected values of a result whose plug-in values are set (for counts: and whose counts are
   A[c]; for PFP: prob_sum the unnormalised sum of the S probability vectors). The group sums of a prediction are
   in the arena (rt->jk). */
void qbnn__jk_add_codes(uint32_t (*group_counts)[QBNN_MAX_CLASSES], int s, int num_samples, const int8_t *codes,
                        int num_classes);
void qbnn__jk_finish_counts(const uint32_t (*group_counts)[QBNN_MAX_CLASSES], int num_samples, int num_classes,
                            qbnn_result_t *result);
/* One sampled pass's softmax codes (sample s of num_samples; MC and HYBRID) into the result's counts A[c], the
   entropy sum and the group sums in rt->jk; then the result (plug-in values and correction) from them. */
void qbnn__add_sample(qbnn_runtime_t *rt, int s, int num_samples, const int8_t *codes, float *entropy_sum,
                      qbnn_result_t *result);
void qbnn__finish_samples(qbnn_runtime_t *rt, int num_samples, const float *entropy_sum, qbnn_result_t *result);
void qbnn__jk_add_probs(float (*group_sums)[QBNN_MAX_CLASSES], int s, int num_samples, const float *probs,
                        int num_classes);
void qbnn__jk_finish_probs(const float (*group_sums)[QBNN_MAX_CLASSES], const float *prob_sum, int num_samples,
                           int num_classes, qbnn_result_t *result);

/* HYBRID / PFP prediction (QBNN_RT_ERR_MODE: the model cannot run the mode). */
int qbnn__predict_mode(qbnn_runtime_t *rt, const int8_t *input, int mode, int num_samples, qbnn_result_t *result);

#endif
