/* The top of the runtime: qbnn_predict, the MC loop (SPEC 7 and 7.1) over the passes of qbnn_runtime.c, and the
   dispatch of the other modes to qbnn_modes.c. */
#include <string.h>

#include "qbnn_runtime.h"
#include "qbnn_runtime_internal.h"

int qbnn_predict(qbnn_runtime_t *rt, const int8_t *input, int mode, int num_samples, qbnn_result_t *res) {
  if (!rt || !input || !res) return QBNN_ERR_NULL;
  const qbnn_model_t *m = rt->model;
  if (!m) return QBNN_RT_ERR_UNINIT;
  if (mode != QBNN_MODE_MC && mode != QBNN_MODE_HYBRID && mode != QBNN_MODE_PFP) return QBNN_RT_ERR_MODE;
  if (num_samples < 1 || num_samples > QBNN_MAX_SAMPLES) return QBNN_RT_ERR_SAMPLES;
  if (mode != QBNN_MODE_MC) return qbnn__predict_mode(rt, input, mode, num_samples, res);
  memset(res, 0, sizeof *res);
  const int8_t *x = qbnn__run_prefix(rt, input); /* deterministic: once per input */
  int x_ready = 0;
  /* float only (no soft-double code on single-precision FPUs); Neumaier-compensated so that the
     sum of S entropies keeps float32 accuracy for any S (SPEC 7: within 1e-5 nats) */
  float entropy_sum[2] = {0.0f, 0.0f};
  for (int s = 0; s < num_samples; ++s) { /* the group sums of SPEC 7.1 go to the arena (rt->jk) */
    int8_t q[QBNN_MAX_CLASSES];
    qbnn__run_sample(rt, x, q, &x_ready);
    qbnn__add_sample(rt, s, num_samples, q, entropy_sum, res);
  }
  qbnn__finish_samples(rt, num_samples, entropy_sum, res);
  return QBNN_OK;
}
