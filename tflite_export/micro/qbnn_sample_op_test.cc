// Host test of QBNN_SAMPLE inside TFLite Micro: runs model.tflite (path in argv[1]) on the input
// codes in argv[2] (raw int8, one image) for S samples with seed argv[3] and prints the int8 softmax
// outputs one line per sample; tests/test_export.py compares them with the numpy reference.
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "qbnn_sample_op.h"
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

alignas(16) static uint8_t arena[1 << 20];

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s model.tflite input.bin seed samples\n", argv[0]);
    return 2;
  }
  std::vector<unsigned char> model_bytes = ReadFile(argv[1]);
  std::vector<unsigned char> input = ReadFile(argv[2]);
  std::vector<unsigned char> aligned(model_bytes.size() + 16);
  unsigned char* base = aligned.data() + (16 - reinterpret_cast<uintptr_t>(aligned.data()) % 16) % 16;
  std::copy(model_bytes.begin(), model_bytes.end(), base);
  const tflite::Model* model = tflite::GetModel(base);
  tflite::MicroMutableOpResolver<8> resolver;
  resolver.AddCustom(QBNN_SAMPLE_OP_NAME, qbnn::Register_QBNN_SAMPLE());
  resolver.AddFullyConnected();
  resolver.AddSoftmax();
  resolver.AddDequantize();
  resolver.AddQuantize();
  resolver.AddExp();
  resolver.AddAdd();
  resolver.AddLog();
  tflite::MicroInterpreter interpreter(model, resolver, arena, sizeof(arena));
  if (interpreter.AllocateTensors() != kTfLiteOk) return 3;
  qbnn::SetSeed(static_cast<uint32_t>(std::strtoul(argv[3], nullptr, 0)));
  TfLiteTensor* in = interpreter.input(0);
  if (input.size() != in->bytes) return 4;
  const int samples = std::atoi(argv[4]);
  for (int s = 0; s < samples; ++s) {
    std::copy(input.begin(), input.end(), in->data.uint8);
    if (interpreter.Invoke() != kTfLiteOk) return 5;
    TfLiteTensor* out = interpreter.output(0);
    for (size_t i = 0; i < out->bytes; ++i) std::printf("%d%c", out->data.int8[i], i + 1 < out->bytes ? ' ' : '\n');
  }
  return 0;
}
