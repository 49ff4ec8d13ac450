// Host test of QBNN_SAMPLE inside real TFLite Micro: runs model.tflite (argv[1]) on the images in argv[2] (raw int8
// input tensors back to back), reseeding every QBNN_SAMPLE stream with argv[3] before each image, for argv[4]
// samples, and prints the int8 outputs one line per (image, sample); the arena used goes to stderr. The tests
// (QBNN_TFLM_TEST_BIN) compare the lines with the numpy reference. The resolver registers exactly the ops the
// exporter can emit (qbnn_tflm_ops.h, generated from the op registry).
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "qbnn_tflm_ops.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

static std::vector<unsigned char> ReadFile(const char* path) {
  std::vector<unsigned char> out;
  FILE* f = std::fopen(path, "rb");
  if (!f) return out;
  int c;
  while ((c = std::fgetc(f)) != EOF) out.push_back(static_cast<unsigned char>(c));
  std::fclose(f);
  return out;
}

alignas(16) static uint8_t arena[1 << 21];

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s model.tflite images.bin seed samples\n", argv[0]);
    return 2;
  }
  std::vector<unsigned char> model_bytes = ReadFile(argv[1]);
  std::vector<unsigned char> input = ReadFile(argv[2]);
  if (model_bytes.empty()) {
    std::fprintf(stderr, "cannot read %s\n", argv[1]);
    return 2;
  }
  std::vector<unsigned char> aligned(model_bytes.size() + 16);
  unsigned char* base = aligned.data() + (16 - reinterpret_cast<uintptr_t>(aligned.data()) % 16) % 16;
  std::copy(model_bytes.begin(), model_bytes.end(), base);
  const tflite::Model* model = tflite::GetModel(base);
  tflite::MicroMutableOpResolver<QBNN_TFLM_NUM_OPS> resolver;
  QBNN_TFLM_ADD_OPS(resolver);
  tflite::MicroInterpreter interpreter(model, resolver, arena, sizeof(arena));
  if (interpreter.AllocateTensors() != kTfLiteOk) return 3;
  std::fprintf(stderr, "arena used: %u bytes\n", static_cast<unsigned>(interpreter.arena_used_bytes()));
  const uint32_t seed = static_cast<uint32_t>(std::strtoul(argv[3], nullptr, 0));
  const int samples = std::atoi(argv[4]);
  TfLiteTensor* in = interpreter.input(0);
  if (in->bytes == 0 || input.empty() || input.size() % in->bytes != 0) return 4;
  for (size_t image = 0; image < input.size() / in->bytes; ++image) {
    qbnn::SetSeed(seed);  // the reference's streams for every image
    for (int s = 0; s < samples; ++s) {
      std::copy(input.begin() + image * in->bytes, input.begin() + (image + 1) * in->bytes, in->data.uint8);
      if (interpreter.Invoke() != kTfLiteOk) return 5;
      TfLiteTensor* out = interpreter.output(0);
      for (size_t i = 0; i < out->bytes; ++i)
        std::printf("%d%c", out->data.int8[i], i + 1 < out->bytes ? ' ' : '\n');
    }
  }
  return 0;
}
