/* Portable C99 runtime for exported tfqbnn models (tflite_export/SPEC.md): S Monte-Carlo passes of a
   Bayesian MLP with on-the-fly weight sampling, then mean probabilities and the uncertainty split.
   No malloc, no TFLM. The weights are never materialised: each layer's kernel samples every
   weight from the layer's PRNG stream as it is multiplied ("fused" kernel).

   Kernels (all bit-exact with each other and with tflite_export.reference):
     QBNN_KERNEL_REF   per weight through the sampler core (qbnn_sampler.c), no table;
     QBNN_KERNEL_LUT   derived table (packed mu|sigma byte, random byte) -> w_code, scalar MACs;
     QBNN_KERNEL_SIMD  the same table, two weights per SMLAD (Cortex-M4/M7; on other targets the
                       instructions are emulated in C, so the path can be tested on a host).
   QBNN_KERNEL_AUTO picks SIMD when __ARM_FEATURE_DSP, else LUT (REF when a layer has no table). */
#ifndef QBNN_RUNTIME_H_
#define QBNN_RUNTIME_H_
#include <stdint.h>

#include "qbnn_sampler.h"

#ifndef QBNN_MAX_LAYERS
#define QBNN_MAX_LAYERS 4
#endif
#ifndef QBNN_MAX_INPUT /* widest layer input (784 for MNIST) */
#define QBNN_MAX_INPUT 784
#endif
#ifndef QBNN_MAX_HIDDEN /* widest layer output */
#define QBNN_MAX_HIDDEN 128
#endif
#ifndef QBNN_MAX_CLASSES
#define QBNN_MAX_CLASSES 10
#endif
#ifndef QBNN_MAX_SAMPLES /* MC samples per qbnn_predict call: the count sums A[c] stay below 2^32 */
#define QBNN_MAX_SAMPLES 65536
#endif

enum { QBNN_KERNEL_AUTO = 0, QBNN_KERNEL_REF = 1, QBNN_KERNEL_LUT = 2, QBNN_KERNEL_SIMD = 3 };
/* Errors of qbnn_init / qbnn_predict / qbnn_forward (0 = QBNN_OK; the sampler core's codes are 1..8:
   QBNN_ERR_NULL for any NULL pointer, QBNN_ERR_CODES for a stored mu/sigma code outside its range).
   LIMITS: a size beyond the QBNN_MAX_* limits; CHAIN: layer dims do not chain; KERNEL: unknown kernel
   or a table kernel without its table; SAMPLES: num_samples outside 1..QBNN_MAX_SAMPLES; UNINIT: no
   successful qbnn_init; RANGE: a constant outside what the integer kernels support (zero points and
   activation range outside int8, multiplier < 0, shift outside -31..30, softmax constants). */
enum { QBNN_RT_ERR_LIMITS = 20, QBNN_RT_ERR_CHAIN = 21, QBNN_RT_ERR_KERNEL = 22, QBNN_RT_ERR_SAMPLES = 23,
       QBNN_RT_ERR_UNINIT = 24, QBNN_RT_ERR_RANGE = 25, QBNN_RT_ERR_MODE = 26 };
/* qbnn_predict modes (SPEC 7 and 11): MC sampling; HYBRID (exact first-layer moments, later layers sampled);
   PFP (probabilistic forward pass, num_samples logit samples). MODE: unknown mode, or a mode the model's
   tables do not support (HYBRID needs layer 0's moment table, PFP every layer's). */
enum { QBNN_MODE_MC = 0, QBNN_MODE_HYBRID = 1, QBNN_MODE_PFP = 2 };

struct qbnn_layer_moments; /* exact code moments + activation kind for HYBRID / PFP: qbnn_modes.h */

typedef struct {
  qbnn_layer core;         /* shapes, bits, layout, stored tensors, SIGMA_Q: the sampler core's view */
  const int8_t *wlut;      /* derived table [256*256]: (I4_FUSED byte << 8 | u) -> w_code; NULL: REF only */
  int32_t in_zero_point, out_zero_point;
  int32_t multiplier, shift; /* FULLY_CONNECTED requantization (QuantizeMultiplier) */
  int32_t act_min, act_max;
  const int8_t *act_lut;   /* SoftPlus LUT[q + 128] or NULL */
  const struct qbnn_layer_moments *moments; /* NULL: HYBRID / PFP unavailable (checked by qbnn_init) */
} qbnn_rt_layer;

typedef struct {
  uint16_t num_layers, num_classes;
  const qbnn_rt_layer *layers;
  int32_t softmax_multiplier, softmax_left_shift, softmax_diff_min;
  uint32_t default_seed;
} qbnn_model_t;

typedef struct {
  const qbnn_model_t *model;
  int kernel;
  qbnn_stream streams[QBNN_MAX_LAYERS]; /* the sampler core's byte streams, one per layer */
} qbnn_runtime_t;

typedef struct {
  uint32_t counts[QBNN_MAX_CLASSES]; /* A[c] = sum_s (q_s[c] + 128) */
  float mean_prob[QBNN_MAX_CLASSES];
  float predictive_entropy, expected_entropy, mutual_information; /* nats */
  int prediction;
} qbnn_result_t;

/* Checks everything the model holds (pointers, shapes within the QBNN_MAX_* limits and chained,
   layouts, bits, every stored mu/sigma code, zero points, activation ranges, requantization and
   softmax constants) and seeds every layer stream with seed_state(seed, l) (SPEC 3.1): pass a
   hardware-RNG word, or model->default_seed. On any error *rt is left uninitialised (qbnn_predict
   then returns QBNN_RT_ERR_UNINIT). The model must stay unchanged while rt uses it. */
int qbnn_init(qbnn_runtime_t *rt, const qbnn_model_t *model, uint32_t seed, int kernel);
void qbnn_seed(qbnn_runtime_t *rt, uint32_t seed); /* NULL rt: no-op */

/* One image given as int8 input codes (pixel byte p -> p - 128), in a mode (QBNN_MODE_*): MC and HYBRID run
   num_samples passes (result->counts = SPEC 7's A[c]); PFP draws num_samples logit samples (counts are 0).
   Streams continue from where the previous call left them. Returns QBNN_OK or an error code (NULL rt, input
   or result: QBNN_ERR_NULL; unknown or unsupported mode: QBNN_RT_ERR_MODE; nothing computed). */
int qbnn_predict(qbnn_runtime_t *rt, const int8_t *input, int mode, int num_samples, qbnn_result_t *result);

/* One deterministic pass with every weight at its quantized mean (the stored mu code): int8 softmax codes.
   SMLAD kernel on DSP targets (rt->kernel SIMD), scalar otherwise; streams untouched. */
int qbnn_forward_mean(qbnn_runtime_t *rt, const int8_t *input, int8_t *softmax_out);

/* One MC pass: int8 softmax codes of num_classes outputs (exposed for tests and benchmarks). */
int qbnn_forward(qbnn_runtime_t *rt, const int8_t *input, int8_t *softmax_out);

/* Static RAM the runtime itself holds (activation buffers), for the RAM report. */
uint32_t qbnn_runtime_static_bytes(void);

#endif
