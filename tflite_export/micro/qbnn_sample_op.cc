// QBNN_SAMPLE custom op for TFLite Micro. Init parses custom_options (every version the exporter writes, with the
// shared C parser of qbnn_options.c), Prepare checks every tensor against them (types, the output's rank and dims
// against the filter, byte counts, table bounds, stored codes), Eval only samples.
#include "qbnn_sample_op.h"

#include "qbnn_options.h"
#include "qbnn_sampler.h"
#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/kernels/kernel_util.h"
#include "tensorflow/lite/micro/kernels/kernel_util.h"
#include "tensorflow/lite/micro/micro_context.h"
#include "tensorflow/lite/micro/micro_log.h"

namespace qbnn {
namespace {

uint32_t g_seed = 0;
uint32_t g_seed_epoch = 0;  // bumped by SetSeed; 0 = use the model's default seed

struct OpData {
  qbnn_sample_options options;  // options.layer gets its tensors in Prepare / Eval
  qbnn_stream stream;
  uint32_t seed_epoch;
  int parse_status;
};

void* Init(TfLiteContext* context, const char* buffer, size_t length) {
  void* raw = context->AllocatePersistentBuffer(context, sizeof(OpData));
  if (raw == nullptr) return nullptr;
  OpData* data = static_cast<OpData*>(raw);
  data->parse_status = qbnn_parse_options(reinterpret_cast<const uint8_t*>(buffer), length, &data->options);
  data->seed_epoch = 0;
  return data;
}

TfLiteStatus CheckInput(TfLiteContext* context, TfLiteTensor* t, uint32_t bytes, TfLiteType type) {
  TF_LITE_ENSURE(context, t != nullptr);
  TF_LITE_ENSURE_TYPES_EQ(context, t->type, type);
  TF_LITE_ENSURE(context, tflite::IsConstantTensor(t));
  TF_LITE_ENSURE_EQ(context, static_cast<uint32_t>(tflite::NumElements(t)), bytes);
  return kTfLiteOk;
}

TfLiteStatus Prepare(TfLiteContext* context, TfLiteNode* node) {
  OpData* data = static_cast<OpData*>(node->user_data);
  TF_LITE_ENSURE(context, data != nullptr);
  if (data->parse_status != QBNN_OK) {
    MicroPrintf("QBNN_SAMPLE: bad custom_options: %s (error %d)", qbnn_options_error(data->parse_status),
                data->parse_status);
    return kTfLiteError;
  }
  qbnn_layer& L = data->options.layer;
  // I4_FUSED and PACKED hold mu and sigma in one tensor (PACKED: ceil(R*C*(b+sb)/8) bytes, qbnn_mu_bytes)
  const int n_in = L.layout == QBNN_LAYOUT_I4_FUSED || L.layout == QBNN_LAYOUT_PACKED ? 1 : 2;
  TF_LITE_ENSURE_EQ(context, tflite::NumInputs(node), n_in);
  TF_LITE_ENSURE_EQ(context, tflite::NumOutputs(node), 1);
  tflite::MicroContext* mc = tflite::GetMicroContext(context);

  // The codes are constant tensors: their data stays valid after the temp tensors are released.
  qbnn_layer probe = L;
  TfLiteTensor* mu = mc->AllocateTempInputTensor(node, 0);
  const TfLiteType mu_type = L.layout == QBNN_LAYOUT_I8 ? kTfLiteInt8 : kTfLiteUInt8;
  TfLiteStatus status = CheckInput(context, mu, qbnn_mu_bytes(&L), mu_type);
  if (status == kTfLiteOk) probe.mu = reinterpret_cast<const uint8_t*>(mu->data.raw);
  if (mu != nullptr) mc->DeallocateTempTfLiteTensor(mu);
  TF_LITE_ENSURE_STATUS(status);
  probe.sigma = nullptr;
  if (n_in == 2) {
    TfLiteTensor* sigma = mc->AllocateTempInputTensor(node, 1);
    status = CheckInput(context, sigma, qbnn_sigma_bytes(&L), kTfLiteUInt8);
    if (status == kTfLiteOk) probe.sigma = reinterpret_cast<const uint8_t*>(sigma->data.raw);
    if (sigma != nullptr) mc->DeallocateTempTfLiteTensor(sigma);
    TF_LITE_ENSURE_STATUS(status);
  }
  TfLiteTensor* out = mc->AllocateTempOutputTensor(node, 0);
  TF_LITE_ENSURE(context, out != nullptr);
  TF_LITE_ENSURE_TYPES_EQ(context, out->type, kTfLiteInt8);
  const int out_check = qbnn_options_output_check(&data->options, out->dims->size, out->dims->data);
  const int out_zero_point = out->params.zero_point;
  mc->DeallocateTempTfLiteTensor(out);
  if (out_check != QBNN_OK) {
    MicroPrintf("QBNN_SAMPLE layer %d: %s", L.layer_index, qbnn_options_error(out_check));
    return kTfLiteError;
  }
  TF_LITE_ENSURE_EQ(context, out_zero_point, 0);

  // Tables and every stored code (a sigma code >= 2^sigma_bits would index past SIGMA_Q in Eval).
  int check = qbnn_layer_check(&probe);
  if (check == QBNN_OK) check = qbnn_layer_check_codes(&probe);
  if (check != QBNN_OK) {
    MicroPrintf("QBNN_SAMPLE layer %d: %s (error %d)", L.layer_index, qbnn_options_error(check), check);
    return kTfLiteError;
  }
  qbnn_stream_init(&data->stream, data->options.default_seed, L.layer_index);
  data->seed_epoch = 0;
  return kTfLiteOk;
}

TfLiteStatus Eval(TfLiteContext* context, TfLiteNode* node) {
  OpData* data = static_cast<OpData*>(node->user_data);
  qbnn_layer& L = data->options.layer;
  L.mu = tflite::micro::GetTensorData<uint8_t>(tflite::micro::GetEvalInput(context, node, 0));
  L.sigma = node->inputs->size == 1
                ? nullptr
                : tflite::micro::GetTensorData<uint8_t>(tflite::micro::GetEvalInput(context, node, 1));
  if (data->seed_epoch != g_seed_epoch) {
    qbnn_stream_init(&data->stream, g_seed, L.layer_index);
    data->seed_epoch = g_seed_epoch;
  }
  qbnn_sample_tensor(&L, &data->stream,
                     tflite::micro::GetTensorData<int8_t>(tflite::micro::GetEvalOutput(context, node, 0)));
  return kTfLiteOk;
}

}  // namespace

void SetSeed(uint32_t seed) {
  g_seed = seed;
  ++g_seed_epoch;
  if (g_seed_epoch == 0) g_seed_epoch = 1;
}

const TFLMRegistration* Register_QBNN_SAMPLE() {
  static TFLMRegistration r = tflite::micro::RegisterOp(Init, Prepare, Eval);
  return &r;
}

}  // namespace qbnn
