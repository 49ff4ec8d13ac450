/* The parameters every weighted op (FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D) holds: its weight source,
   requantisation and activation (the generated model_data.c writes one per weighted op). */
#ifndef QBNN_WEIGHTED_H_
#define QBNN_WEIGHTED_H_
#include <stdint.h>

#include "qbnn_sampler.h"

struct qbnn_layer_moments; /* exact code moments + activation kind for HYBRID / PFP: qbnn_modes.h */

/* The filter is [core.rows = dims[0], core.cols = prod(dims[1:])] of its TFLite shape ([O, I], OHWI, 1HWO). */
typedef struct {
  qbnn_layer core;         /* Bayesian: shapes, bits, layout, stored mu/sigma, SIGMA_Q (the sampler core's view);
                              constant weights: rows / cols only, core.mu == NULL */
  const int8_t *wlut;      /* Bayesian: derived table [256*256] (I4_FUSED byte << 8 | u) -> w_code (64 KB), or for
                              PACKED the pair table [2^p * 256] (pair << 8 | u) -> w_code, or NULL */
  uint32_t wlut_entries;   /* PACKED: the pair table's entries, 256 << p (checked); I4_FUSED: unused */
  const int8_t *offsets;   /* Bayesian, instead of wlut: offset table [2^sb * 256] (sigma code << 8 | u) ->
                              (SIGMA_Q[k] EPS_Q[u] + 2^(s-1)) >> s, w_code = clamp(mu + offset, -M, M) (4 KB,
                              slower); with neither table only QBNN_KERNEL_REF runs */
  const int8_t *filter;    /* constant weights: int8 codes, or int4 two per byte (low nibble first) */
  int32_t filter_bits;     /* 8 or 4 (constant weights) */
  int32_t in_zero_point, out_zero_point;
  int32_t multiplier, shift; /* per-tensor requantisation (QuantizeMultiplier), used when multipliers == NULL */
  const int32_t *multipliers, *shifts; /* per output channel, or NULL */
  const int32_t *bias;     /* int32 per output channel, or NULL */
  int32_t act_min, act_max;
  const int8_t *act_lut;   /* SoftPlus LUT[q + 128] or NULL */
  const struct qbnn_layer_moments *moments; /* NULL: HYBRID / PFP unavailable (checked by qbnn_init) */
} qbnn_rt_layer;

#endif
