/* Test firmware (and host test): runs the generated model on the embedded test images and compares
   with the values the Python reference produced (tflite_export.c_source): softmax count sums and
   predictions exactly, uncertainty floats within QBNN_TV_TOLERANCE nats. Cross-checks the REF
   (sampler core per weight), LUT and SIMD kernels against each other. Exit status 0 = all equal.
   With -DQBNN_BENCH=1 it prints key=value lines instead (instruction counts, RAM). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model_data.h"
#include "qbnn_runtime.h"
#include "test_vectors.h"

#ifndef QBNN_HOST
#include "icount.h"
#endif

static qbnn_runtime_t g_rt;
static int8_t g_input[QBNN_MAX_INPUT];

static void to_input(const uint8_t *pixels, int n) {
  for (int i = 0; i < n; ++i) g_input[i] = (int8_t)((int)pixels[i] - 128); /* scale 1/255, zp -128 */
}

static const char *kernel_name(int k) {
  return k == QBNN_KERNEL_REF ? "ref" : k == QBNN_KERNEL_LUT ? "lut" : k == QBNN_KERNEL_SIMD ? "simd" : "auto";
}

/* Runs image i with a kernel; returns the number of mismatches against the expected values. */
__attribute__((unused)) static int check_image(int i, int kernel, int verbose) {
  qbnn_result_t res;
  int bad = 0, err = qbnn_init(&g_rt, &qbnn_model, QBNN_TV_SEED, kernel);
  if (err) {
    printf("FAIL qbnn_init(kernel=%s) = %d\n", kernel_name(kernel), err);
    return 1;
  }
  to_input(qbnn_tv_images[i], QBNN_TV_INPUT_DIM);
  err = qbnn_predict(&g_rt, g_input, QBNN_TV_NUM_SAMPLES, &res);
  if (err) {
    printf("FAIL qbnn_predict = %d\n", err);
    return 1;
  }
  for (int c = 0; c < QBNN_TV_NUM_CLASSES; ++c) bad += res.counts[c] != qbnn_tv_counts[i][c];
  bad += res.prediction != qbnn_tv_prediction[i];
  const float pe = qbnn_tv_entropy[i][0], ee = qbnn_tv_entropy[i][1], mi = qbnn_tv_entropy[i][2];
  const float dpe = fabsf(res.predictive_entropy - pe), dee = fabsf(res.expected_entropy - ee),
              dmi = fabsf(res.mutual_information - mi);
  bad += dpe > QBNN_TV_TOLERANCE || dee > QBNN_TV_TOLERANCE || dmi > QBNN_TV_TOLERANCE;
  for (int l = 0; l < qbnn_model.num_layers; ++l) bad += g_rt.streams[l].position != qbnn_tv_positions[l];
  if (verbose || bad) {
    /* floats printed as micro-nats: newlib-nano's printf has no %f */
    printf("%s image %d (%s) kernel=%s pred=%d expected=%d PE=%ld EE=%ld MI=%ld (1e-6 nats; max |diff| %ld)\n",
           bad ? "FAIL" : "ok", i, qbnn_tv_sources[i], kernel_name(kernel), res.prediction, qbnn_tv_prediction[i],
           (long)lroundf(res.predictive_entropy * 1e6f), (long)lroundf(res.expected_entropy * 1e6f),
           (long)lroundf(res.mutual_information * 1e6f), (long)lroundf(fmaxf(dpe, fmaxf(dee, dmi)) * 1e6f));
  }
  if (bad) {
    printf("  counts:  ");
    for (int c = 0; c < QBNN_TV_NUM_CLASSES; ++c) printf(" %lu/%lu", (unsigned long)res.counts[c], (unsigned long)qbnn_tv_counts[i][c]);
    printf("\n  positions:");
    for (int l = 0; l < qbnn_model.num_layers; ++l)
      printf(" %lu/%lu", (unsigned long)g_rt.streams[l].position, (unsigned long)qbnn_tv_positions[l]);
    printf("\n");
  }
  return bad;
}

#if QBNN_BENCH
extern uint32_t __StackLimit;

static uintptr_t current_sp(void) {
  uintptr_t sp;
  __asm volatile("mov %0, sp" : "=r"(sp));
  return sp;
}

int main(void) {
  const int samples = QBNN_BENCH_SAMPLES > 0 ? QBNN_BENCH_SAMPLES : QBNN_TV_NUM_SAMPLES;
  qbnn_result_t res;
  uint32_t weights = 0;
  for (int l = 0; l < qbnn_model.num_layers; ++l) weights += qbnn_model.layers[l].core.rows * qbnn_model.layers[l].core.cols;
  if (qbnn_init(&g_rt, &qbnn_model, QBNN_TV_SEED, QBNN_KERNEL_AUTO)) return 1;
  to_input(qbnn_tv_images[0], QBNN_TV_INPUT_DIM);

  /* paint the free stack below this frame, run, find the deepest word written */
  const uintptr_t sp = current_sp() - 64;
  for (volatile uint32_t *w = &__StackLimit; (uintptr_t)w < sp; ++w) *w = 0xA5A5A5A5u;
  icount_start();
  const uint64_t t0 = icount_now();
  const int err = qbnn_predict(&g_rt, g_input, samples, &res);
  const uint64_t t1 = icount_now();
  if (err) {
    printf("error: qbnn_predict = %d\n", err);
    return 1;
  }
  const uint32_t *w = &__StackLimit;
  while (*w == 0xA5A5A5A5u) ++w;
  const uint32_t stack = (uint32_t)(sp - (uintptr_t)w);
  const uint64_t per_sample = (t1 - t0) / (uint64_t)samples;

  printf("kernel=%s\n", kernel_name(g_rt.kernel));
  printf("samples=%d\n", samples);
  printf("weights=%lu\n", (unsigned long)weights);
  printf("insn_total=%lu\n", (unsigned long)(t1 - t0));
  printf("insn_per_sample=%lu\n", (unsigned long)per_sample);
  printf("insn_per_weight_sample=%lu.%02lu\n", (unsigned long)(per_sample / weights),
         (unsigned long)((per_sample * 100 / weights) % 100));
  printf("param_bytes=%lu\n", (unsigned long)QBNN_PARAM_BYTES);
  printf("derived_table_bytes=%lu\n", (unsigned long)QBNN_DERIVED_TABLE_BYTES);
  printf("runtime_static_bytes=%lu\n", (unsigned long)(qbnn_runtime_static_bytes() + sizeof g_rt));
  printf("runtime_stack_bytes=%lu\n", (unsigned long)stack);
  printf("runtime_ram_bytes=%lu\n", (unsigned long)(qbnn_runtime_static_bytes() + sizeof g_rt + stack));
  return 0;
}
#else
int main(void) {
  int bad = 0;
  printf("qbnn firmware test on %s: %d images x %d MC samples\n", BOARD_NAME, QBNN_TV_NUM_IMAGES, QBNN_TV_NUM_SAMPLES);
  for (int i = 0; i < QBNN_TV_NUM_IMAGES; ++i) bad += check_image(i, QBNN_KERNEL_AUTO, 1);
  /* every kernel on the first images: bit-exact with each other and with the reference */
  const int n_cross = QBNN_TV_NUM_IMAGES < 2 ? QBNN_TV_NUM_IMAGES : 2;
  for (int i = 0; i < n_cross; ++i) {
    bad += check_image(i, QBNN_KERNEL_REF, 1);
    bad += check_image(i, QBNN_KERNEL_LUT, 1);
    bad += check_image(i, QBNN_KERNEL_SIMD, 1);
  }
  printf("%s: %d mismatches\n", bad ? "FAILED" : "PASSED", bad);
  return bad ? 1 : 0;
}
#endif
