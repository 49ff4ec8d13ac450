/* HYBRID and PFP modes of the portable runtime (tflite_export/SPEC.md section 11; numpy reference
   tflite_export/modes.py). Reached through qbnn_predict(rt, input, QBNN_MODE_HYBRID | QBNN_MODE_PFP, S, result);
   this header holds what the generated model data needs: the per-layer moment tables. */
#ifndef QBNN_MODES_H_
#define QBNN_MODES_H_
#include <stdint.h>

#include "qbnn_runtime.h"

enum { QBNN_ACT_LINEAR = 0, QBNN_ACT_RELU = 1, QBNN_ACT_SOFTPLUS = 2 };

/* Exact moments of a sampled weight code per stored index i, over the 256 equally likely stream bytes u
   (SPEC 11.1): table[2i] = S1 = sum_u w(u), table[2i + 1] = V = 256 sum_u w(u)^2 - S1^2, so E[code] = S1 / 256
   and Var[code] = V / 65536 exactly. i is the I4_FUSED byte (mu nibble | sigma code << 4; 256 entries) or the
   PACKED pair (2^(b + sb) entries): the layer's layout and bits give the size. Written by
   tflite_export/c_source.py; qbnn_init checks |S1| <= 256 M, 0 <= V <= 65536 M^2, the activation kind, finite
   positive scales, and that the layer is I4_FUSED or PACKED. */
struct qbnn_layer_moments {
  const int32_t *table; /* [entries * 2]: 256 (I4_FUSED) or 2^(b + sb) (PACKED) entries */
  uint8_t activation;   /* QBNN_ACT_*: the layer's activation (ReLU and linear share their int8 clamp range) */
  float in_scale;       /* PFP: real value of one input code step (1/255 for the image), > 0 */
  float w_scale;        /* PFP: real value of one weight code (1/M for the paper's layers), > 0 */
};
typedef struct qbnn_layer_moments qbnn_layer_moments;

#define QBNN_HYBRID_Z_GAIN 32851 /* round(2^15 / sd(EPS_Q / 2^12)): unit-variance z (SPEC 11.2) */
#define QBNN_HYBRID_GAIN_BITS 15

#endif
