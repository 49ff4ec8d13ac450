/* Portable C99 runtime for exported tfqbnn models (tflite_export/SPEC.md): a model is a list of integer ops
   (FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D, MAX/AVERAGE_POOL_2D, RESHAPE; the kinds are listed once in
   qbnn_op_list.h, one kernel file each under micro/ops/) followed by the int8 softmax. An op's weights are
   either constant (int8 or packed int4) or Bayesian: sampled from the op's PRNG stream as they are used, never
   stored whole ("fused" sampling; a convolution samples one output channel's filter at a time into scratch).
   The ops before the first Bayesian one (the deterministic prefix) run once per input; only the Bayesian tail
   is repeated for each Monte-Carlo sample. No malloc, no static buffers: the caller passes a scratch arena of
   qbnn_arena_bytes(model) bytes (as TFLM's tensor arena; the generated model_data.h's QBNN_ARENA_BYTES is the same
   number at compile time, qbnn_plan.h), so several models or threads can coexist.

   Kernels of the Bayesian FULLY_CONNECTED (all bit-exact with each other and with tflite_export.reference):
     QBNN_KERNEL_REF   per weight through the sampler core (qbnn_sampler.c), no table;
     QBNN_KERNEL_LUT   derived table (packed mu|sigma byte, random byte) -> w_code, scalar MACs;
     QBNN_KERNEL_SIMD  the same table, two weights per SMLAD (Cortex-M4/M7/M33; on other targets the
                       instructions are emulated in C, so the path can be tested on a host).
   QBNN_KERNEL_AUTO picks SIMD when __ARM_FEATURE_DSP, else LUT. Convolutions sample through the table (REF:
   the sampler core) and multiply with SMLAD pairs (emulated off DSP targets). */
#ifndef QBNN_RUNTIME_H_
#define QBNN_RUNTIME_H_
#include <stdint.h>

#include "qbnn_sampler.h"

/* model_data.c format: written by tflite_export/c_source.py, checked by qbnn_init (QBNN_RT_ERR_FORMAT) */
#define QBNN_FORMAT_VERSION 3 /* 3: qbnn_layer_moments gained in_scale / w_scale */

#ifndef QBNN_MAX_OPS
#define QBNN_MAX_OPS 32
#endif
#ifndef QBNN_MAX_STREAMS /* Bayesian ops (one PRNG stream each, SPEC 3.1) */
#define QBNN_MAX_STREAMS 8
#endif
#ifndef QBNN_MAX_CLASSES
#define QBNN_MAX_CLASSES 10
#endif
#ifndef QBNN_MAX_TENSOR /* largest int8 activation tensor (elements) */
#define QBNN_MAX_TENSOR 65536
#endif
#ifndef QBNN_MAX_ARENA /* largest arena qbnn_init plans (bytes): every int16 scratch index stays below 2^30 */
#define QBNN_MAX_ARENA 0x7FFFFFF8u
#endif
#ifndef QBNN_MAX_SAMPLES /* MC samples per qbnn_predict call: the count sums A[c] stay below 2^32 */
#define QBNN_MAX_SAMPLES 65536
#endif
#ifndef QBNN_JK_GROUPS /* the jackknife correction (SPEC 7.1) leaves out min(S, QBNN_JK_GROUPS) groups of samples;
                          their sums are in the arena: 4 * QBNN_JK_GROUPS * QBNN_MAX_CLASSES bytes */
#define QBNN_JK_GROUPS 32
#endif
#if QBNN_JK_GROUPS < 2
#error "QBNN_JK_GROUPS must be at least 2 (the numpy reference, tflite_export/modes.py JK_GROUPS, uses 32)"
#endif

enum { QBNN_KERNEL_AUTO = 0, QBNN_KERNEL_REF = 1, QBNN_KERNEL_LUT = 2, QBNN_KERNEL_SIMD = 3 };
/* Errors of qbnn_init / qbnn_predict / qbnn_forward (0 = QBNN_OK; the sampler core's codes are 1..8:
   QBNN_ERR_NULL for any NULL pointer, QBNN_ERR_CODES for a stored mu/sigma code outside its range).
   LIMITS: a size beyond the QBNN_MAX_* limits (products of dims, filter sizes, a convolution's padded operands
   and the arena are computed in 64 bits and bounded, so no size wraps); CHAIN: op shapes do not chain; KERNEL: unknown kernel
   or a table kernel without its table; SAMPLES: num_samples outside 1..QBNN_MAX_SAMPLES; UNINIT: no
   successful qbnn_init; RANGE: a constant outside what the integer kernels support (zero points and
   activation range outside int8, multiplier < 0, shift outside -31..30, softmax constants); MODE: see below;
   FORMAT: model_data written for another QBNN_FORMAT_VERSION; OP: an unknown op kind or malformed op
   parameters; ARENA: the arena is NULL-sized, too small (qbnn_arena_bytes) or not 8-byte aligned. */
enum { QBNN_RT_ERR_LIMITS = 20, QBNN_RT_ERR_CHAIN = 21, QBNN_RT_ERR_KERNEL = 22, QBNN_RT_ERR_SAMPLES = 23,
       QBNN_RT_ERR_UNINIT = 24, QBNN_RT_ERR_RANGE = 25, QBNN_RT_ERR_MODE = 26, QBNN_RT_ERR_FORMAT = 27,
       QBNN_RT_ERR_OP = 28, QBNN_RT_ERR_ARENA = 29 };
/* qbnn_predict modes (SPEC 7 and 11): MC sampling; HYBRID (exact first-layer moments, later layers sampled);
   PFP (probabilistic forward pass, num_samples logit samples). MODE: unknown mode, or a mode the model does not
   support (HYBRID / PFP need a dense Bayesian MLP: every op a Bayesian FULLY_CONNECTED with its moment table). */
enum { QBNN_MODE_MC = 0, QBNN_MODE_HYBRID = 1, QBNN_MODE_PFP = 2 };

/* Op kinds: QBNN_OP_FULLY_CONNECTED, QBNN_OP_CONV_2D, ... (qbnn_op_list.h) */
#define QBNN_OP(KIND, name) QBNN_OP_##KIND,
enum { QBNN_OP_NONE = 0,
#include "qbnn_op_list.h"
       QBNN_OP_COUNT };
#undef QBNN_OP
/* the kernels' parameter structs and scratch sizes (micro/ops/qbnn_op_<name>.h), the arena plan (qbnn_plan.h) */
#include "qbnn_op_list.h"
#include "qbnn_plan.h"

typedef struct {
  uint16_t h, w, c; /* per-example NHWC (a vector: 1 x 1 x n) */
} qbnn_dims;

typedef struct {
  uint8_t kind;         /* QBNN_OP_* */
  qbnn_dims in, out;
  const void *params;   /* the kernel's parameter struct (micro/ops/qbnn_op_<name>.h), or NULL */
} qbnn_op;

typedef struct {
  uint32_t format_version; /* QBNN_FORMAT_VERSION */
  uint16_t num_ops, num_classes;
  const qbnn_op *ops;
  int32_t softmax_multiplier, softmax_left_shift, softmax_diff_min;
  uint32_t default_seed;
} qbnn_model_t;

typedef struct {
  const qbnn_model_t *model;
  int kernel;
  uint16_t first_bayesian; /* ops before it form the deterministic prefix (num_ops: none is Bayesian) */
  qbnn_stream streams[QBNN_MAX_STREAMS]; /* the sampler core's byte streams, by stream id */
  /* the caller's arena, cut by qbnn_init (8-byte aligned pieces) */
  int8_t *act[2];    /* ping-pong activations */
  int8_t *prefix;    /* the deterministic prefix's output, kept across samples */
  void *jk;          /* SPEC 7.1's jackknife group sums of one prediction (QBNN_JK_BYTES) */
  int16_t *x_first;  /* int16 operands of the first Bayesian op (input - zero point), built once per input */
  int16_t *x_op;     /* int16 operands of any other weighted op */
  int16_t *filter;   /* one output channel's filter (sampled or unpacked) */
  uint8_t *hybrid;   /* the HYBRID mode's scratch (over x_first); NULL: the model cannot run HYBRID */
  uint8_t *pfp;      /* the PFP mode's scratch (over all but the prefix output); NULL: no PFP for the model */
} qbnn_runtime_t;

typedef struct {
  uint32_t counts[QBNN_MAX_CLASSES]; /* A[c] = sum_s (q_s[c] + 128) */
  float mean_prob[QBNN_MAX_CLASSES];
  float predictive_entropy, expected_entropy, mutual_information; /* nats, plug-in (SPEC 7) */
  int prediction;
  /* SPEC 7.1: the jackknife estimate of the plug-in predictive entropy's bias (-entropy_correction; the plug-in
     MI is low by about MI / S), and the corrected predictive entropy and MI = plug-in + entropy_correction */
  float entropy_correction, predictive_entropy_corrected, mutual_information_corrected;
} qbnn_result_t;

/* Bytes of scratch arena qbnn_init needs for `model` (0: the model is malformed; qbnn_init says why). */
uint32_t qbnn_arena_bytes(const qbnn_model_t *model);

/* Checks everything the model holds (format version, op kinds, shapes within the QBNN_MAX_* limits and chained,
   layouts, bits, every stored mu/sigma code, zero points, activation ranges, requantization and softmax
   constants) and the arena (8-byte aligned, at least qbnn_arena_bytes(model)), then seeds every stream with
   seed_state(seed, id) (SPEC 3.1): pass a hardware-RNG word, or model->default_seed. On any error *rt is left
   uninitialised (qbnn_predict then returns QBNN_RT_ERR_UNINIT). The model and arena must stay with rt. */
int qbnn_init(qbnn_runtime_t *rt, const qbnn_model_t *model, void *arena, uint32_t arena_bytes, uint32_t seed,
              int kernel);
void qbnn_seed(qbnn_runtime_t *rt, uint32_t seed); /* NULL rt: no-op */

/* One image given as int8 input codes (pixel byte p -> p - 128), in a mode (QBNN_MODE_*): MC and HYBRID run
   num_samples passes (result->counts = SPEC 7's A[c]); PFP draws num_samples logit samples (counts are 0).
   Streams continue from where the previous call left them. Returns QBNN_OK or an error code (NULL rt, input
   or result: QBNN_ERR_NULL; unknown or unsupported mode: QBNN_RT_ERR_MODE; nothing computed). */
int qbnn_predict(qbnn_runtime_t *rt, const int8_t *input, int mode, int num_samples, qbnn_result_t *result);

/* One deterministic pass with every weight at its quantized mean (a Bayesian weight's stored mu code):
   int8 softmax codes; streams untouched. */
int qbnn_forward_mean(qbnn_runtime_t *rt, const int8_t *input, int8_t *softmax_out);

/* One MC pass: int8 softmax codes of num_classes outputs (exposed for tests and benchmarks). */
int qbnn_forward(qbnn_runtime_t *rt, const int8_t *input, int8_t *softmax_out);

/* Input elements (h * w * c of the first op; 0 beyond QBNN_MAX_TENSOR). */
uint32_t qbnn_input_size(const qbnn_model_t *model);

#endif
