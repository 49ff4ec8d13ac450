// TFLite Micro example: runs the exported model.tflite (QBNN_SAMPLE custom ops + the builtins of
// qbnn_tflm_ops.h) with the op registered through MicroMutableOpResolver::AddCustom,
// S invocations per test image (one weight sample each), and compares the summed softmax codes
// with the numpy reference's values in test_vectors.h (SPEC.md section 7). Exit status 0 = equal.
#include <cstdio>

#include "model_tflite.h"
#include "qbnn_tflm_ops.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"
#include "test_vectors.h"

#ifdef QBNN_BOARD  // QEMU board (../boards.mk): TFLM's messages through semihosting, instruction counts
extern "C" {
#include "icount.h"
}
#include "tensorflow/lite/micro/cortex_m_generic/debug_log_callback.h"
static void Log(const char* s) { std::printf("%s", s); }
#endif

namespace {
constexpr int kArenaSize = 256 * 1024;  // int8 sampled-weight tensors + activations
alignas(16) uint8_t g_arena[kArenaSize];
}  // namespace

int main() {
#ifdef QBNN_BOARD
  RegisterDebugLogCallback(Log);
  uint64_t insn = 0;
#endif
  const tflite::Model* model = tflite::GetModel(g_model);
  if (model->version() != TFLITE_SCHEMA_VERSION) {
    std::printf("model schema %lu != %d\n", static_cast<unsigned long>(model->version()), TFLITE_SCHEMA_VERSION);
    return 2;
  }
  tflite::MicroMutableOpResolver<QBNN_TFLM_NUM_OPS> resolver;  // every op the exporter can emit
  QBNN_TFLM_ADD_OPS(resolver);

  tflite::MicroInterpreter interpreter(model, resolver, g_arena, kArenaSize);
  if (interpreter.AllocateTensors() != kTfLiteOk) {
    std::printf("AllocateTensors failed\n");
    return 2;
  }
  std::printf("arena used: %u bytes\n", static_cast<unsigned>(interpreter.arena_used_bytes()));
  TfLiteTensor* input = interpreter.input(0);
  TfLiteTensor* output = interpreter.output(0);
  int bad = 0;
  for (int i = 0; i < QBNN_TV_NUM_IMAGES; ++i) {
    qbnn::SetSeed(QBNN_TV_SEED);  // same streams as the reference for this image
    for (int p = 0; p < QBNN_TV_INPUT_DIM; ++p) input->data.int8[p] = static_cast<int8_t>(qbnn_tv_images[i][p] - 128);
    uint32_t counts[QBNN_TV_NUM_CLASSES] = {0};
#ifdef QBNN_BOARD
    icount_start();
#endif
    for (int s = 0; s < QBNN_TV_NUM_SAMPLES; ++s) {
      if (interpreter.Invoke() != kTfLiteOk) {
        std::printf("Invoke failed\n");
        return 2;
      }
      for (int c = 0; c < QBNN_TV_NUM_CLASSES; ++c) counts[c] += static_cast<uint32_t>(output->data.int8[c] + 128);
    }
#ifdef QBNN_BOARD
    insn += icount_now();  // S invocations and the output sums
#endif
    int mismatch = 0;
    for (int c = 0; c < QBNN_TV_NUM_CLASSES; ++c) mismatch += counts[c] != qbnn_tv_counts[i][c];
    std::printf("%s image %d (%s)\n", mismatch ? "FAIL" : "ok", i, qbnn_tv_sources[i]);
    bad += mismatch;
  }
#ifdef QBNN_BOARD
  std::printf("instructions per inference (one sample): %lu\n",
              static_cast<unsigned long>(insn / (QBNN_TV_NUM_IMAGES * QBNN_TV_NUM_SAMPLES)));
#endif
  std::printf("%s: %d mismatches\n", bad ? "FAILED" : "PASSED", bad);
  return bad ? 1 : 0;
}
