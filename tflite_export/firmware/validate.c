/* Validation test of the runtime's API (host with ASan/UBSan, and on the boards): every malformed
   model, out-of-range constant and NULL pointer must be refused with an error code; a valid model
   must still init and predict. Each case mutates a RAM copy of the generated model (a dense Bayesian MLP). Prints one line
   per case ("ok CASE code=N" / "FAIL CASE ...") and exits 0 only when all cases pass.
   On the host, `qbnn_validate CASE` runs only that case (to see which one crashes). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model_data.h"
#include "qbnn_modes.h"
#include "qbnn_runtime.h"
#include "test_vectors.h"

static qbnn_runtime_t g_rt;
static qbnn_model_t g_m;
/* RAM copies the cases mutate: the op list, the layer parameters (a dense Bayesian MLP: every op a
   FULLY_CONNECTED with qbnn_rt_layer parameters), the last layer's stored bytes and moments */
#define VALIDATE_MAX_WIDTH 128 /* the widest layer the cases' own buffers hold */
static qbnn_op g_ops[QBNN_NUM_OPS];
static qbnn_rt_layer g_layers[QBNN_NUM_OPS];
static uint8_t g_packed_last[VALIDATE_MAX_WIDTH * VALIDATE_MAX_WIDTH + 4] __attribute__((aligned(16)));
static int8_t g_input[QBNN_INPUT_DIM];
static qbnn_result_t g_res;
static int32_t g_moments_table[512];
static qbnn_layer_moments g_moments;
static uint64_t g_arena[(QBNN_ARENA_BYTES + 15u) / 8u];

static void reset(void) {
  g_m = qbnn_model;
  memcpy(g_ops, qbnn_model.ops, sizeof g_ops);
  g_m.ops = g_ops;
  for (int l = 0; l < QBNN_NUM_OPS; ++l) {
    g_layers[l] = *(const qbnn_rt_layer *)qbnn_model.ops[l].params;
    g_ops[l].params = &g_layers[l];
  }
  const qbnn_layer *L = &g_layers[QBNN_NUM_OPS - 1].core;
  memcpy(g_packed_last, L->mu, L->rows * L->cols);
  g_layers[QBNN_NUM_OPS - 1].core.mu = g_packed_last;
  g_moments = *g_layers[QBNN_NUM_OPS - 1].moments;
  memcpy(g_moments_table, g_moments.table, sizeof g_moments_table);
  g_moments.table = g_moments_table;
  g_layers[QBNN_NUM_OPS - 1].moments = &g_moments;
  for (int i = 0; i < QBNN_TV_INPUT_DIM; ++i) g_input[i] = (int8_t)((int)qbnn_tv_images[0][i] - 128);
}

#define LAST (&g_layers[QBNN_NUM_OPS - 1])

static int init_with(const qbnn_model_t *m, uint32_t seed, int kernel) {
  return qbnn_init(&g_rt, m, g_arena, sizeof g_arena, seed, kernel);
}

/* A case mutates the copy and returns the code of the call that must fail. */
static int c_null_rt(void) { return qbnn_init(NULL, &g_m, g_arena, sizeof g_arena, 1, QBNN_KERNEL_AUTO); }
static int c_null_model(void) { return init_with(NULL, 1, QBNN_KERNEL_AUTO); }
static int c_null_ops(void) { g_m.ops = NULL; return init_with(&g_m, 1, QBNN_KERNEL_AUTO); }
static int c_null_params(void) { g_ops[1].params = NULL; return init_with(&g_m, 1, QBNN_KERNEL_AUTO); }
static int c_null_mu(void) { g_layers[0].core.mu = NULL; return init_with(&g_m, 1, QBNN_KERNEL_REF); }
static int c_null_sigma_q(void) { g_layers[0].core.sigma_q = NULL; return init_with(&g_m, 1, QBNN_KERNEL_AUTO); }
static int c_null_wlut(void) { g_layers[0].wlut = NULL; return init_with(&g_m, 1, QBNN_KERNEL_LUT); }
static int init_ok(int kernel) { return init_with(&g_m, 1, kernel); }
static int c_predict_null_rt(void) { return qbnn_predict(NULL, g_input, QBNN_MODE_MC, 2, &g_res); }
static int c_predict_null_input(void) { return init_ok(QBNN_KERNEL_AUTO) ? -1 : qbnn_predict(&g_rt, NULL, QBNN_MODE_MC, 2, &g_res); }
static int c_predict_null_result(void) { return init_ok(QBNN_KERNEL_AUTO) ? -1 : qbnn_predict(&g_rt, g_input, QBNN_MODE_MC, 2, NULL); }
static int c_predict_uninit(void) { memset(&g_rt, 0, sizeof g_rt); return qbnn_predict(&g_rt, g_input, QBNN_MODE_MC, 2, &g_res); }
static int c_predict_zero_samples(void) { return init_ok(QBNN_KERNEL_AUTO) ? -1 : qbnn_predict(&g_rt, g_input, QBNN_MODE_MC, 0, &g_res); }
static int c_forward_null_input(void) {
  int8_t out[QBNN_MAX_CLASSES];
  return init_ok(QBNN_KERNEL_AUTO) ? -1 : qbnn_forward(&g_rt, NULL, out);
}
static int c_forward_null_out(void) { return init_ok(QBNN_KERNEL_AUTO) ? -1 : qbnn_forward(&g_rt, g_input, NULL); }
static int c_predict_mode_unknown(void) { return init_ok(QBNN_KERNEL_AUTO) ? -1 : qbnn_predict(&g_rt, g_input, 3, 2, &g_res); }
static int c_predict_mode_negative(void) { return init_ok(QBNN_KERNEL_AUTO) ? -1 : qbnn_predict(&g_rt, g_input, -1, 2, &g_res); }
static int c_predict_hybrid_null_input(void) {
  return init_ok(QBNN_KERNEL_AUTO) ? -1 : qbnn_predict(&g_rt, NULL, QBNN_MODE_HYBRID, 2, &g_res);
}
static int c_predict_pfp_zero_samples(void) {
  return init_ok(QBNN_KERNEL_AUTO) ? -1 : qbnn_predict(&g_rt, g_input, QBNN_MODE_PFP, 0, &g_res);
}
static int c_predict_hybrid_without_moments(void) {
  g_layers[0].moments = NULL;
  return init_ok(QBNN_KERNEL_AUTO) ? -1 : qbnn_predict(&g_rt, g_input, QBNN_MODE_HYBRID, 2, &g_res);
}
static int c_predict_pfp_without_last_moments(void) {
  LAST->moments = NULL;
  return init_ok(QBNN_KERNEL_AUTO) ? -1 : qbnn_predict(&g_rt, g_input, QBNN_MODE_PFP, 2, &g_res);
}
static int c_forward_mean_null_out(void) { return init_ok(QBNN_KERNEL_AUTO) ? -1 : qbnn_forward_mean(&g_rt, g_input, NULL); }
static int c_forward_mean_uninit(void) {
  int8_t out[QBNN_MAX_CLASSES];
  memset(&g_rt, 0, sizeof g_rt);
  return qbnn_forward_mean(&g_rt, g_input, out);
}
static int c_moments_s1_out_of_range(void) { g_moments_table[2 * 17] = 256 * 7 + 1; return init_ok(QBNN_KERNEL_AUTO); }
static int c_moments_v_negative(void) { g_moments_table[2 * 17 + 1] = -1; return init_ok(QBNN_KERNEL_AUTO); }
static int c_moments_null_table(void) { g_moments.table = NULL; return init_ok(QBNN_KERNEL_AUTO); }
static int c_moments_activation_unknown(void) { g_moments.activation = 9; return init_ok(QBNN_KERNEL_AUTO); }
static int c_moments_last_not_linear(void) { g_moments.activation = QBNN_ACT_RELU; return init_ok(QBNN_KERNEL_AUTO); }
static int c_moments_in_scale_nan(void) { g_moments.in_scale = NAN; return init_ok(QBNN_KERNEL_AUTO); }
static int c_moments_w_scale_zero(void) { g_moments.w_scale = 0.0f; return init_ok(QBNN_KERNEL_AUTO); }
static int c_kernel_unknown(void) { return init_with(&g_m, 1, 7); }
static int c_act_min_below_int8(void) { g_layers[0].act_min = -129; return init_ok(QBNN_KERNEL_AUTO); }
static int c_act_max_above_int8(void) { g_layers[0].act_max = 300; return init_ok(QBNN_KERNEL_AUTO); }
static int c_act_min_gt_max(void) { g_layers[0].act_min = 10; g_layers[0].act_max = 5; return init_ok(QBNN_KERNEL_AUTO); }
static int c_shift_plus_40(void) { g_layers[0].shift = 40; return init_ok(QBNN_KERNEL_AUTO); }
static int c_shift_minus_40(void) { g_layers[0].shift = -40; return init_ok(QBNN_KERNEL_AUTO); }
static int c_multiplier_negative(void) { g_layers[0].multiplier = -5; return init_ok(QBNN_KERNEL_AUTO); }
static int c_in_zp_overflows_int8(void) { g_layers[0].in_zero_point = 200; return init_ok(QBNN_KERNEL_AUTO); }
static int c_in_zp_truncated_int16(void) { g_layers[1].in_zero_point = 40000; return init_ok(QBNN_KERNEL_SIMD); }
static int c_in_zp_int_min(void) { g_layers[0].in_zero_point = INT32_MIN; return init_ok(QBNN_KERNEL_LUT); }
static int c_out_zp_overflows(void) { g_layers[0].out_zero_point = INT32_MAX; return init_ok(QBNN_KERNEL_AUTO); }
static int c_sigma_code_beyond_table(void) { /* sb = 3: stored sigma codes 8..15 have no SIGMA_Q entry */
  LAST->core.sigma_bits = 3;
  for (uint32_t i = 0; i < LAST->core.rows * LAST->core.cols; ++i) g_packed_last[i] &= 0x7F;
  g_packed_last[5] |= 0x80;
  return init_ok(QBNN_KERNEL_REF);
}
static int c_mu_code_minus_8(void) { g_packed_last[3] = (uint8_t)((g_packed_last[3] & 0xF0) | 0x8); return init_ok(QBNN_KERNEL_REF); }
static int c_chain_cols(void) { g_layers[1].core.cols -= 4; return init_ok(QBNN_KERNEL_AUTO); }
static int c_classes_mismatch(void) { g_m.num_classes -= 1; return init_ok(QBNN_KERNEL_AUTO); }
static int c_zero_ops(void) { g_m.num_ops = 0; return init_ok(QBNN_KERNEL_AUTO); }
static int c_tensor_too_large(void) { g_ops[0].in.h = 65535; g_ops[0].in.w = 65535; return init_ok(QBNN_KERNEL_REF); }
static int c_format_version(void) { g_m.format_version = QBNN_FORMAT_VERSION + 1; return init_ok(QBNN_KERNEL_AUTO); }
static int c_op_kind_unknown(void) { g_ops[1].kind = QBNN_OP_COUNT; return init_ok(QBNN_KERNEL_AUTO); }
static int c_op_kind_zero(void) { g_ops[0].kind = QBNN_OP_NONE; return init_ok(QBNN_KERNEL_AUTO); }
static int c_op_dims_chain(void) { g_ops[1].in.c += 1; return init_ok(QBNN_KERNEL_AUTO); }
static int c_stream_shared(void) { g_layers[1].core.layer_index = g_layers[0].core.layer_index; return init_ok(QBNN_KERNEL_AUTO); }
static int c_stream_beyond_max(void) { g_layers[1].core.layer_index = QBNN_MAX_STREAMS; return init_ok(QBNN_KERNEL_AUTO); }
static int c_arena_null(void) { return qbnn_init(&g_rt, &g_m, NULL, sizeof g_arena, 1, QBNN_KERNEL_AUTO); }
static int c_arena_too_small(void) { return qbnn_init(&g_rt, &g_m, g_arena, qbnn_arena_bytes(&g_m) - 8, 1, QBNN_KERNEL_AUTO); }
static int c_arena_misaligned(void) {
  return qbnn_init(&g_rt, &g_m, (uint8_t *)g_arena + 4, sizeof g_arena - 4, 1, QBNN_KERNEL_AUTO);
}
static int c_bias_beyond_bound(void) {
  static int32_t bias[VALIDATE_MAX_WIDTH];
  bias[0] = INT32_MAX;
  g_layers[0].bias = bias;
  return init_ok(QBNN_KERNEL_AUTO);
}
static int c_constant_filter_null(void) {
  g_layers[1].core.mu = NULL; /* a constant-weight layer without its filter */
  g_layers[1].moments = NULL;
  return init_ok(QBNN_KERNEL_AUTO);
}
static int c_constant_filter_bits_5(void) {
  static const int8_t filter[VALIDATE_MAX_WIDTH * VALIDATE_MAX_WIDTH];
  g_layers[1].core.mu = NULL;
  g_layers[1].moments = NULL;
  g_layers[1].filter = filter;
  g_layers[1].filter_bits = 5;
  return init_ok(QBNN_KERNEL_AUTO);
}
static int c_softmax_left_shift_40(void) { g_m.softmax_left_shift = 40; return init_ok(QBNN_KERNEL_AUTO); }
static int c_softmax_diff_min_positive(void) { g_m.softmax_diff_min = 1; return init_ok(QBNN_KERNEL_AUTO); }
static int c_softmax_multiplier_negative(void) { g_m.softmax_multiplier = -1; return init_ok(QBNN_KERNEL_AUTO); }
static int c_layout_unknown(void) { g_layers[0].core.layout = 9; return init_ok(QBNN_KERNEL_REF); }
static int c_weight_bits_9(void) { g_layers[0].core.weight_bits = 9; return init_ok(QBNN_KERNEL_REF); }

/* Hand-built models whose size products (elements, filter size, padded operands, arena bytes) pass 2^31 or 2^32:
   refused by qbnn_arena_bytes (0) and qbnn_init, so no kernel ever runs on them. Their filters are constant, so
   init never reads the weights (a few bytes stand for arrays the model claims to be gigabytes long). */
static const int8_t g_tiny_filter[64];
static qbnn_op g_wrap_ops[4];
static qbnn_conv_params g_wrap_conv;
static qbnn_pool_params g_wrap_pool;
static qbnn_rt_layer g_wrap_fc;
static qbnn_model_t g_wrap_m;

static qbnn_dims dims(uint16_t h, uint16_t w, uint16_t c) {
  const qbnn_dims d = {h, w, c};
  return d;
}

/* a constant-weight layer of `cols` filter columns (int8 or int4), rows set by the op */
static qbnn_rt_layer const_layer(uint32_t rows, uint32_t cols, int32_t bits) {
  qbnn_rt_layer L;
  memset(&L, 0, sizeof L);
  L.core.rows = rows;
  L.core.cols = cols;
  L.filter = g_tiny_filter;
  L.filter_bits = bits;
  L.multiplier = 1 << 30;
  L.act_min = -128;
  L.act_max = 127;
  return L;
}

static void wrap_op(int i, uint8_t kind, qbnn_dims in, qbnn_dims out, const void *params) {
  g_wrap_ops[i].kind = kind;
  g_wrap_ops[i].in = in;
  g_wrap_ops[i].out = out;
  g_wrap_ops[i].params = params;
}

/* the last op: FULLY_CONNECTED in -> num_classes, constant int4 weights (its accumulator bound holds) */
static void wrap_head(int i, qbnn_dims in, uint32_t cols) {
  g_wrap_fc = const_layer(g_m.num_classes, cols, 4);
  wrap_op(i, QBNN_OP_FULLY_CONNECTED, in, dims(1, 1, g_m.num_classes), &g_wrap_fc);
}

/* a conv's SAME geometry at stride 1 (out = in): TFLite's pads (f - 1) / 2 */
static void wrap_conv_params(uint16_t fh, uint16_t fw) {
  memset(&g_wrap_conv, 0, sizeof g_wrap_conv);
  g_wrap_conv.filter_h = fh, g_wrap_conv.filter_w = fw, g_wrap_conv.stride_h = g_wrap_conv.stride_w = 1;
  g_wrap_conv.pad_top = (uint16_t)((fh - 1u) / 2u), g_wrap_conv.pad_left = (uint16_t)((fw - 1u) / 2u);
}

static void wrap_pool_params(void) {
  memset(&g_wrap_pool, 0, sizeof g_wrap_pool);
  g_wrap_pool.filter_h = g_wrap_pool.filter_w = g_wrap_pool.stride_h = g_wrap_pool.stride_w = 1;
  g_wrap_pool.act_min = -128, g_wrap_pool.act_max = 127;
}

/* The case's code: qbnn_init's on the shared arena, or QBNN_OK (a FAIL) when qbnn_arena_bytes accepted the model. */
static int init_wrap(int num_ops) {
  g_wrap_m = g_m;
  g_wrap_m.ops = g_wrap_ops;
  g_wrap_m.num_ops = (uint16_t)num_ops;
  if (qbnn_arena_bytes(&g_wrap_m) != 0) return QBNN_OK;
  return qbnn_init(&g_rt, &g_wrap_m, g_arena, sizeof g_arena, 1, QBNN_KERNEL_AUTO);
}

/* CONV_2D on 1x1x32768, a 65535x65535 SAME filter: the filter size 65535^2 * 32768 is 32768 mod 2^32 */
static int c_wrap_conv_filter_2_47(void) {
  wrap_conv_params(65535, 65535);
  g_wrap_conv.w = const_layer(g_m.num_classes, 32768u, 8);
  wrap_op(0, QBNN_OP_CONV_2D, dims(1, 1, 32768), dims(1, 1, g_m.num_classes), &g_wrap_conv);
  return init_wrap(1);
}
/* MAX_POOL_2D on 61681x4096x17 (2^32 + 4096 elements), RESHAPE to 4096, FULLY_CONNECTED */
static int c_wrap_pool_elems_2_32(void) {
  wrap_pool_params();
  wrap_op(0, QBNN_OP_MAX_POOL_2D, dims(61681, 4096, 17), dims(61681, 4096, 17), &g_wrap_pool);
  wrap_op(1, QBNN_OP_RESHAPE, dims(61681, 4096, 17), dims(1, 1, 4096), NULL);
  wrap_head(2, dims(1, 1, 4096), 4096);
  return init_wrap(3);
}
/* CONV_2D 1x1x2 -> classes, a 33025x65026 SAME filter: 33025 * 65026 * 2 = 2^32 + 4 filter columns */
static int c_wrap_conv_filter_2_32(void) {
  wrap_conv_params(33025, 65026);
  g_wrap_conv.w = const_layer(g_m.num_classes, 4, 8);
  wrap_op(0, QBNN_OP_CONV_2D, dims(1, 1, 2), dims(1, 1, g_m.num_classes), &g_wrap_conv);
  return init_wrap(1);
}
/* the same as DEPTHWISE_CONV_2D (depth multiplier classes / 2): 33025 * 65026 * classes codes in its one row */
static int c_wrap_depthwise_filter_2_32(void) {
  wrap_conv_params(33025, 65026);
  const uint32_t k = (uint32_t)((uint64_t)33025u * 65026u * g_m.num_classes); /* the wrapped size */
  g_wrap_conv.w = const_layer(1, k, 8);
  wrap_op(0, QBNN_OP_DEPTHWISE_CONV_2D, dims(1, 1, 2), dims(1, 1, g_m.num_classes), &g_wrap_conv);
  return init_wrap(1);
}
/* RESHAPE 4 -> 33025x65026x2 (2^32 + 4 elements), MAX_POOL_2D on it, RESHAPE back, FULLY_CONNECTED */
static int c_wrap_reshape_pool_2_32(void) {
  wrap_pool_params();
  wrap_op(0, QBNN_OP_RESHAPE, dims(1, 1, 4), dims(33025, 65026, 2), NULL);
  wrap_op(1, QBNN_OP_MAX_POOL_2D, dims(33025, 65026, 2), dims(33025, 65026, 2), &g_wrap_pool);
  wrap_op(2, QBNN_OP_RESHAPE, dims(33025, 65026, 2), dims(1, 1, 4), NULL);
  wrap_head(3, dims(1, 1, 4), 4);
  return init_wrap(4);
}
/* CONV_2D on 1x65535x1 with a 32769x1 int4 filter (SAME): 32769 * 65535 padded operands, 2^32 + 65534 bytes */
static int c_wrap_conv_operands_2_32(void) {
  wrap_conv_params(32769, 1);
  g_wrap_conv.w = const_layer(1, 32769u, 4);
  wrap_op(0, QBNN_OP_CONV_2D, dims(1, 65535, 1), dims(1, 65535, 1), &g_wrap_conv);
  wrap_op(1, QBNN_OP_RESHAPE, dims(1, 65535, 1), dims(1, 1, 65535), NULL);
  wrap_head(2, dims(1, 1, 65535), 65535);
  return init_wrap(3);
}

static const struct {
  const char *name;
  int (*run)(void);
} kCases[] = {
    {"null_rt", c_null_rt}, {"null_model", c_null_model}, {"null_ops", c_null_ops}, {"null_params", c_null_params}, {"null_mu", c_null_mu},
    {"null_sigma_q", c_null_sigma_q}, {"null_wlut", c_null_wlut}, {"predict_null_rt", c_predict_null_rt},
    {"predict_null_input", c_predict_null_input}, {"predict_null_result", c_predict_null_result},
    {"predict_uninit", c_predict_uninit}, {"predict_zero_samples", c_predict_zero_samples},
    {"forward_null_input", c_forward_null_input}, {"forward_null_out", c_forward_null_out},
    {"kernel_unknown", c_kernel_unknown}, {"act_min_below_int8", c_act_min_below_int8},
    {"act_max_above_int8", c_act_max_above_int8}, {"act_min_gt_max", c_act_min_gt_max},
    {"shift_plus_40", c_shift_plus_40}, {"shift_minus_40", c_shift_minus_40},
    {"multiplier_negative", c_multiplier_negative}, {"in_zp_overflows_int8", c_in_zp_overflows_int8},
    {"in_zp_truncated_int16", c_in_zp_truncated_int16}, {"in_zp_int_min", c_in_zp_int_min},
    {"out_zp_overflows", c_out_zp_overflows}, {"sigma_code_beyond_table", c_sigma_code_beyond_table},
    {"mu_code_minus_8", c_mu_code_minus_8}, {"chain_cols", c_chain_cols}, {"classes_mismatch", c_classes_mismatch},
    {"zero_ops", c_zero_ops}, {"tensor_too_large", c_tensor_too_large}, {"softmax_left_shift_40", c_softmax_left_shift_40},
    {"softmax_diff_min_positive", c_softmax_diff_min_positive},
    {"softmax_multiplier_negative", c_softmax_multiplier_negative}, {"layout_unknown", c_layout_unknown},
    {"weight_bits_9", c_weight_bits_9}, {"predict_mode_unknown", c_predict_mode_unknown},
    {"predict_mode_negative", c_predict_mode_negative}, {"predict_hybrid_null_input", c_predict_hybrid_null_input},
    {"predict_pfp_zero_samples", c_predict_pfp_zero_samples},
    {"predict_hybrid_without_moments", c_predict_hybrid_without_moments},
    {"predict_pfp_without_last_moments", c_predict_pfp_without_last_moments},
    {"forward_mean_null_out", c_forward_mean_null_out}, {"forward_mean_uninit", c_forward_mean_uninit},
    {"moments_s1_out_of_range", c_moments_s1_out_of_range}, {"moments_v_negative", c_moments_v_negative},
    {"moments_null_table", c_moments_null_table}, {"moments_activation_unknown", c_moments_activation_unknown},
    {"moments_last_not_linear", c_moments_last_not_linear}, {"format_version", c_format_version},
    {"moments_in_scale_nan", c_moments_in_scale_nan}, {"moments_w_scale_zero", c_moments_w_scale_zero},
    {"op_kind_unknown", c_op_kind_unknown}, {"op_kind_zero", c_op_kind_zero}, {"op_dims_chain", c_op_dims_chain},
    {"stream_shared", c_stream_shared}, {"stream_beyond_max", c_stream_beyond_max}, {"arena_null", c_arena_null},
    {"arena_too_small", c_arena_too_small}, {"arena_misaligned", c_arena_misaligned},
    {"bias_beyond_bound", c_bias_beyond_bound}, {"constant_filter_null", c_constant_filter_null},
    {"constant_filter_bits_5", c_constant_filter_bits_5}, {"wrap_conv_filter_2_47", c_wrap_conv_filter_2_47},
    {"wrap_pool_elems_2_32", c_wrap_pool_elems_2_32}, {"wrap_conv_filter_2_32", c_wrap_conv_filter_2_32},
    {"wrap_depthwise_filter_2_32", c_wrap_depthwise_filter_2_32}, {"wrap_reshape_pool_2_32", c_wrap_reshape_pool_2_32},
    {"wrap_conv_operands_2_32", c_wrap_conv_operands_2_32},
};

/* Cases whose failing call is qbnn_init(&g_rt, ...): afterwards g_rt must refuse to predict, even
   though it held a valid model before (no result computed from a half-checked model). */
static int is_init_case(const char *name) {
  return strncmp(name, "predict_", 8) != 0 && strncmp(name, "forward_", 8) != 0 && strcmp(name, "null_rt") != 0;
}

static int run_cases(const char *only) {
  int bad = 0, n = 0;
  /* the unmutated copy is valid for every kernel and gives the reference counts */
  for (int k = QBNN_KERNEL_REF; k <= QBNN_KERNEL_SIMD && !only; ++k) {
    reset();
    int err = init_with(&g_m, QBNN_TV_SEED, k);
    if (!err) err = qbnn_predict(&g_rt, g_input, QBNN_MODE_MC, QBNN_TV_NUM_SAMPLES, &g_res);
    int same = !err;
    for (int c = 0; c < QBNN_TV_NUM_CLASSES && same; ++c) same = g_res.counts[c] == qbnn_tv_counts[0][c];
    printf("%s valid_model kernel=%d code=%d\n", same ? "ok" : "FAIL", k, err);
    bad += !same;
  }
  for (unsigned i = 0; i < sizeof kCases / sizeof kCases[0]; ++i) {
    if (only && strcmp(only, kCases[i].name) != 0) continue;
    reset();
    if (init_with(&g_m, 1, QBNN_KERNEL_AUTO) != QBNN_OK) return 2;
    const int code = kCases[i].run();
    reset();
    const int usable = is_init_case(kCases[i].name) && qbnn_predict(&g_rt, g_input, QBNN_MODE_MC, 2, &g_res) == QBNN_OK;
    const int fail = code == QBNN_OK || code == -1 || usable;
    printf("%s %s code=%d%s\n", fail ? "FAIL" : "ok", kCases[i].name, code, usable ? " (runtime still predicts)" : "");
    bad += fail;
    ++n;
  }
  /* a caller's copy of the stored bytes at an odd address: same results (the SIMD kernel reads
     words only from 4-aligned rows and takes the byte-wise kernel otherwise) */
  if (!only || strcmp(only, "valid_model_unaligned_copy") == 0) {
    reset();
    const qbnn_layer *L = &LAST->core;
    memmove(g_packed_last + 1, g_packed_last, L->rows * L->cols);
    LAST->core.mu = g_packed_last + 1;
    int err = init_with(&g_m, QBNN_TV_SEED, QBNN_KERNEL_SIMD);
    if (!err) err = qbnn_predict(&g_rt, g_input, QBNN_MODE_MC, QBNN_TV_NUM_SAMPLES, &g_res);
    int same = !err;
    for (int c = 0; c < QBNN_TV_NUM_CLASSES && same; ++c) same = g_res.counts[c] == qbnn_tv_counts[0][c];
    printf("%s valid_model_unaligned_copy kernel=3 code=%d\n", same ? "ok" : "FAIL", err);
    bad += !same;
  }
  printf("%s: %d of %d cases failed\n", bad ? "VALIDATION FAILED" : "VALIDATION PASSED", bad, n);
  return bad ? 1 : 0;
}

#ifdef QBNN_HOST
int main(int argc, char **argv) { return run_cases(argc > 1 ? argv[1] : NULL); }
#else
int main(void) { return run_cases(NULL); }
#endif
