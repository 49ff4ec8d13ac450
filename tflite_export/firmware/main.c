/* Test firmware (and host test): runs the generated model on the embedded test images and compares
   with the values the Python reference produced (tflite_export.c_source): softmax count sums and
   predictions exactly, uncertainty floats within QBNN_TV_TOLERANCE nats. Cross-checks the REF
   (sampler core per weight), LUT and SIMD kernels against each other. Exit status 0 = all equal.
   With -DQBNN_BENCH=1 it prints key=value lines instead (instruction counts, RAM). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model_data.h"
#include "qbnn_modes.h"
#include "qbnn_runtime.h"
#include "qbnn_runtime_internal.h" /* the bench times SPEC 7.1's jackknife functions on their own */
#include "test_vectors.h"

#ifndef QBNN_HOST
#include "icount.h"
#endif
#ifndef QBNN_MODE_SAMPLES /* S of the bench's per-mode lines (issue 13: MC and HYBRID at S = 30) */
#define QBNN_MODE_SAMPLES 30
#endif

static qbnn_runtime_t g_rt;
static int8_t g_input[QBNN_INPUT_DIM];
/* the runtime's scratch (qbnn_arena_bytes; the generator's QBNN_ARENA_BYTES is checked against it) */
static uint64_t g_arena[(QBNN_ARENA_BYTES + 7u) / 8u];

static int init(int kernel) { return qbnn_init(&g_rt, &qbnn_model, g_arena, sizeof g_arena, QBNN_TV_SEED, kernel); }

/* mismatches of the stream positions (by stream id) against expected ones */
static int bad_positions(const uint32_t *expected, int verbose) {
  int bad = 0;
  for (int j = 0; j < QBNN_TV_NUM_STREAMS; ++j) {
    const uint32_t got = g_rt.streams[qbnn_tv_stream_ids[j]].position;
    bad += got != expected[j];
    if (verbose) printf(" %lu/%lu", (unsigned long)got, (unsigned long)expected[j]);
  }
  return bad;
}

static void to_input(const uint8_t *pixels, int n) {
  for (int i = 0; i < n; ++i) g_input[i] = (int8_t)((int)pixels[i] - 128); /* scale 1/255, zp -128 */
}

static const char *kernel_name(int k) {
  return k == QBNN_KERNEL_REF ? "ref" : k == QBNN_KERNEL_LUT ? "lut" : k == QBNN_KERNEL_SIMD ? "simd" : "auto";
}

/* SPEC 7.1: the jackknife correction bit-identical to the reference's float32, the corrected values the plug-in
   ones plus it; prints one line; returns the number of mismatches. */
__attribute__((unused)) static int check_jk(const qbnn_result_t *res, float expected, const char *mode, int i, int kernel, int verbose) {
  const int bad = res->entropy_correction != expected ||
                  res->predictive_entropy_corrected != res->predictive_entropy + res->entropy_correction ||
                  res->mutual_information_corrected != res->mutual_information + res->entropy_correction;
  if (verbose || bad) /* 1e-9 nats: newlib-nano's printf has no %f */
    printf("%s jackknife image %d mode=%s kernel=%s correction=%ld expected=%ld (1e-9 nats)\n", bad ? "FAIL" : "ok",
           i, mode, kernel_name(kernel), (long)lroundf(res->entropy_correction * 1e9f),
           (long)lroundf(expected * 1e9f));
  return bad;
}

/* Runs image i with a kernel; returns the number of mismatches against the expected values. */
__attribute__((unused)) static int check_image(int i, int kernel, int verbose) {
  qbnn_result_t res;
  int bad = 0, err = init(kernel);
  if (err) {
    printf("FAIL qbnn_init(kernel=%s) = %d\n", kernel_name(kernel), err);
    return 1;
  }
  to_input(qbnn_tv_images[i], QBNN_TV_INPUT_DIM);
  err = qbnn_predict(&g_rt, g_input, QBNN_MODE_MC, QBNN_TV_NUM_SAMPLES, &res);
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
  bad += bad_positions(qbnn_tv_positions, 0);
  bad += check_jk(&res, qbnn_tv_jk[i][0], "mc", i, kernel, verbose);
  /* the mean-code pass (every weight at its mu code) */
  int8_t qm[QBNN_MAX_CLASSES];
  const int bad_mc = bad;
  err = qbnn_forward_mean(&g_rt, g_input, qm);
  bad += err != QBNN_OK;
  for (int c = 0; c < QBNN_TV_NUM_CLASSES && !err; ++c) bad += qm[c] != qbnn_tv_mean_codes[i][c];
  if (bad != bad_mc) printf("FAIL mean pass image %d kernel=%s\n", i, kernel_name(kernel));
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
    bad_positions(qbnn_tv_positions, 1);
    printf("\n");
  }
  return bad;
}

#if QBNN_TV_HAS_HYBRID
/* HYBRID (integers exact, entropies within QBNN_TV_TOLERANCE) and, for a dense Bayesian tail, PFP (floats within
   QBNN_TV_PFP_TOLERANCE of the numpy float32 mirror, prediction exact) on image i. */
__attribute__((unused)) static int check_modes(int i, int kernel, int verbose) {
  qbnn_result_t res;
  int bad = 0, bad_h = 0, bad_p = 0;
  to_input(qbnn_tv_images[i], QBNN_TV_INPUT_DIM);
  int err = init(kernel);
  if (!err) err = qbnn_predict(&g_rt, g_input, QBNN_MODE_HYBRID, QBNN_TV_NUM_SAMPLES, &res);
  if (err) {
    printf("FAIL hybrid image %d kernel=%s: code %d\n", i, kernel_name(kernel), err);
    return 1;
  }
  for (int c = 0; c < QBNN_TV_NUM_CLASSES; ++c) bad_h += res.counts[c] != qbnn_tv_hybrid_counts[i][c];
  bad_h += res.prediction != qbnn_tv_hybrid_prediction[i];
  bad_h += fabsf(res.predictive_entropy - qbnn_tv_hybrid_entropy[i][0]) > QBNN_TV_TOLERANCE ||
           fabsf(res.expected_entropy - qbnn_tv_hybrid_entropy[i][1]) > QBNN_TV_TOLERANCE ||
           fabsf(res.mutual_information - qbnn_tv_hybrid_entropy[i][2]) > QBNN_TV_TOLERANCE;
  bad_h += bad_positions(qbnn_tv_hybrid_positions, 0);
  bad_h += check_jk(&res, qbnn_tv_jk[i][1], "hybrid", i, kernel, verbose);
  const int hpred = res.prediction;
  const long hmi = lroundf(res.mutual_information * 1e6f);
  float dmax = 0.0f;
#if QBNN_TV_HAS_PFP
  err = init(kernel);
  if (!err) err = qbnn_predict(&g_rt, g_input, QBNN_MODE_PFP, QBNN_TV_NUM_SAMPLES, &res);
  if (err) {
    printf("FAIL pfp image %d kernel=%s: code %d\n", i, kernel_name(kernel), err);
    return 1;
  }
  for (int c = 0; c < QBNN_TV_NUM_CLASSES; ++c) dmax = fmaxf(dmax, fabsf(res.mean_prob[c] - qbnn_tv_pfp_prob[i][c]));
  dmax = fmaxf(dmax, fabsf(res.predictive_entropy - qbnn_tv_pfp_entropy[i][0]));
  dmax = fmaxf(dmax, fabsf(res.expected_entropy - qbnn_tv_pfp_entropy[i][1]));
  dmax = fmaxf(dmax, fabsf(res.mutual_information - qbnn_tv_pfp_entropy[i][2]));
  bad_p += dmax > QBNN_TV_PFP_TOLERANCE;
  bad_p += res.prediction != qbnn_tv_pfp_prediction[i];
  bad_p += bad_positions(qbnn_tv_pfp_positions, 0);
  bad_p += check_jk(&res, qbnn_tv_jk[i][2], "pfp", i, kernel, verbose);
  const char *pfp = bad_p ? "FAIL" : "ok";
#else /* PFP needs every op from the first Bayesian one to be a dense layer: the runtime must refuse it */
  err = init(kernel);
  if (!err) err = qbnn_predict(&g_rt, g_input, QBNN_MODE_PFP, QBNN_TV_NUM_SAMPLES, &res);
  bad_p += err != QBNN_RT_ERR_MODE;
  const char *pfp = bad_p ? "FAIL" : "refused";
  res.prediction = -1;
  res.mutual_information = 0.0f;
#endif
  bad = bad_h + bad_p;
  if (verbose || bad) /* max |diff| in 1e-9 (pfp): newlib-nano's printf has no %f */
    printf("%s modes image %d (%s) kernel=%s hybrid=%s pred=%d MI=%ld pfp=%s pred=%d MI=%ld max|diff|=%ld (1e-9)\n",
           bad ? "FAIL" : "ok", i, qbnn_tv_sources[i], kernel_name(kernel), bad_h ? "FAIL" : "ok", hpred,
           hmi, pfp, res.prediction, (long)lroundf(res.mutual_information * 1e6f),
           (long)lroundf(dmax * 1e9f));
  return bad;
}
#endif

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
  const uint32_t weights = QBNN_NUM_WEIGHTS;
  if (qbnn_arena_bytes(&qbnn_model) != QBNN_ARENA_BYTES) {
    printf("error: qbnn_arena_bytes = %lu, generator says %lu\n", (unsigned long)qbnn_arena_bytes(&qbnn_model),
           (unsigned long)QBNN_ARENA_BYTES);
    return 1;
  }
  if (init(QBNN_KERNEL_AUTO)) return 1;
  to_input(qbnn_tv_images[0], QBNN_TV_INPUT_DIM);

  /* paint the free stack below this frame, run, find the deepest word written */
  const uintptr_t sp = current_sp() - 64;
  for (volatile uint32_t *w = &__StackLimit; (uintptr_t)w < sp; ++w) *w = 0xA5A5A5A5u;
  icount_start();
  const uint64_t t0 = icount_now();
  const int err = qbnn_predict(&g_rt, g_input, QBNN_MODE_MC, samples, &res);
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
  printf("sample_table=%s\n", QBNN_SAMPLE_TABLE_KIND);
  printf("sample_table_bytes=%lu\n", (unsigned long)QBNN_SAMPLE_TABLE_BYTES);
  printf("arena_bytes=%lu\n", (unsigned long)qbnn_arena_bytes(&qbnn_model));
  printf("runtime_static_bytes=%lu\n", (unsigned long)(sizeof g_arena + sizeof g_rt));
  printf("runtime_stack_bytes=%lu\n", (unsigned long)stack);
  printf("runtime_ram_bytes=%lu\n", (unsigned long)(sizeof g_arena + sizeof g_rt + stack));

  /* SPEC 11 modes at S = QBNN_MODE_SAMPLES (MC and HYBRID passes, PFP logit samples), and the mean-code pass;
     each from a fresh seed, stack painted again */
  static const char *const kModes[] = {"mc", "hybrid", "pfp"};
  uint32_t mode_stack = 0;
  for (int mode = QBNN_MODE_MC; mode <= QBNN_MODE_PFP; ++mode) {
    qbnn_seed(&g_rt, QBNN_TV_SEED);
    for (volatile uint32_t *p = &__StackLimit; (uintptr_t)p < sp; ++p) *p = 0xA5A5A5A5u;
    icount_start();
    const uint64_t m0 = icount_now();
    const int merr = qbnn_predict(&g_rt, g_input, mode, QBNN_MODE_SAMPLES, &res);
    const uint64_t m1 = icount_now();
    const uint32_t *p = &__StackLimit;
    while (*p == 0xA5A5A5A5u) ++p;
    if ((uint32_t)(sp - (uintptr_t)p) > mode_stack) mode_stack = (uint32_t)(sp - (uintptr_t)p);
    if (merr == QBNN_RT_ERR_MODE && mode != QBNN_MODE_MC) { /* HYBRID / PFP: a dense Bayesian entry / tail only */
      printf("mode=%s unsupported\n", kModes[mode]);
      continue;
    }
    if (merr) {
      printf("error: qbnn_predict(mode=%s) = %d\n", kModes[mode], merr);
      return 1;
    }
    printf("mode=%s insn_per_inference=%lu\n", kModes[mode], (unsigned long)(m1 - m0));
  }
  int8_t q[QBNN_MAX_CLASSES];
  icount_start();
  const uint64_t d0 = icount_now();
  const int derr = qbnn_forward_mean(&g_rt, g_input, q);
  const uint64_t d1 = icount_now();
  if (derr) {
    printf("error: qbnn_forward_mean = %d\n", derr);
    return 1;
  }
  printf("insn_deterministic_pass=%lu\n", (unsigned long)(d1 - d0));

  /* SPEC 7.1's jackknife on its own at S = QBNN_MODE_SAMPLES (part of each mode's count above): the group sums of
     S MC samples' codes (MC, HYBRID) or of their probabilities (PFP), then the correction */
  {
    static int8_t codes[QBNN_MODE_SAMPLES][QBNN_MAX_CLASSES];
    static float probs[QBNN_MODE_SAMPLES][QBNN_MAX_CLASSES];
    /* static: the bench's own copies, off a 16 KB part's stack (the runtime holds its own in the arena) */
    static uint32_t gc[QBNN_JK_GROUPS][QBNN_MAX_CLASSES];
    static float gs[QBNN_JK_GROUPS][QBNN_MAX_CLASSES];
    float pm[QBNN_MAX_CLASSES];
    const int nc = QBNN_TV_NUM_CLASSES;
    memset(&res, 0, sizeof res);
    memset(pm, 0, sizeof pm);
    for (int s = 0; s < QBNN_MODE_SAMPLES; ++s) {
      if (qbnn_forward(&g_rt, g_input, codes[s])) return 1;
      uint32_t t = 0;
      for (int c = 0; c < nc; ++c) t += (uint32_t)(codes[s][c] + 128);
      for (int c = 0; c < nc; ++c) {
        res.counts[c] += (uint32_t)(codes[s][c] + 128);
        probs[s][c] = (float)(codes[s][c] + 128) / (float)t;
        pm[c] = pm[c] + probs[s][c];
      }
    }
    icount_start();
    const uint64_t j0 = icount_now();
    for (int s = 0; s < QBNN_MODE_SAMPLES; ++s) qbnn__jk_add_codes(gc, s, QBNN_MODE_SAMPLES, codes[s], nc);
    qbnn__jk_finish_counts(gc, QBNN_MODE_SAMPLES, nc, &res);
    const uint64_t j1 = icount_now();
    for (int s = 0; s < QBNN_MODE_SAMPLES; ++s) qbnn__jk_add_probs(gs, s, QBNN_MODE_SAMPLES, probs[s], nc);
    qbnn__jk_finish_probs(gs, pm, QBNN_MODE_SAMPLES, nc, &res);
    const uint64_t j2 = icount_now();
    printf("insn_jackknife_counts=%lu\n", (unsigned long)(j1 - j0));
    printf("insn_jackknife_probs=%lu\n", (unsigned long)(j2 - j1));
    printf("jackknife_arena_bytes=%lu\n", (unsigned long)QBNN_JK_BYTES); /* the runtime's group sums */
  }
  printf("mode_samples=%d\n", QBNN_MODE_SAMPLES);
  printf("modes_stack_bytes=%lu\n", (unsigned long)mode_stack);
  return 0;
}
#else
/* Two runtimes on one model with their own arenas, calls interleaved: each gives what it gives alone (nothing
   is shared between runtimes: no static buffers in the MC path). */
#if !defined(QBNN_RAM_BYTES) || QBNN_RAM_BYTES >= 32768
static int check_two_runtimes(void) {
  static qbnn_runtime_t rt2;
  static uint64_t arena2[(QBNN_ARENA_BYTES + 7u) / 8u];
  static int8_t input2[QBNN_INPUT_DIM];
  qbnn_result_t a, b;
  int bad = 0;
  const int other = QBNN_TV_NUM_IMAGES > 1 ? 1 : 0;
  if (init(QBNN_KERNEL_AUTO) || qbnn_init(&rt2, &qbnn_model, arena2, sizeof arena2, QBNN_TV_SEED, QBNN_KERNEL_AUTO))
    return 1;
  for (int i = 0; i < QBNN_TV_INPUT_DIM; ++i) input2[i] = (int8_t)((int)qbnn_tv_images[other][i] - 128);
  to_input(qbnn_tv_images[0], QBNN_TV_INPUT_DIM);
  bad += qbnn_predict(&rt2, input2, QBNN_MODE_MC, 1, &b) != QBNN_OK; /* rt2 one sample ahead on another image */
  bad += qbnn_predict(&g_rt, g_input, QBNN_MODE_MC, QBNN_TV_NUM_SAMPLES, &a) != QBNN_OK;
  for (int c = 0; c < QBNN_TV_NUM_CLASSES; ++c) bad += a.counts[c] != qbnn_tv_counts[0][c];
  printf("%s two runtimes interleaved\n", bad ? "FAIL" : "ok");
  return bad;
}
#endif

int main(void) {
  int bad = 0;
  printf("qbnn firmware test on %s: %d images x %d MC samples\n", BOARD_NAME, QBNN_TV_NUM_IMAGES, QBNN_TV_NUM_SAMPLES);
  if (qbnn_arena_bytes(&qbnn_model) != QBNN_ARENA_BYTES) { /* the generator's plan is the runtime's */
    printf("FAIL qbnn_arena_bytes = %lu, generator says %lu\n", (unsigned long)qbnn_arena_bytes(&qbnn_model),
           (unsigned long)QBNN_ARENA_BYTES);
    ++bad;
  }
#if !defined(QBNN_RAM_BYTES) || QBNN_RAM_BYTES >= 32768 /* a second arena and input beside the first: not on 16 KB parts */
  bad += check_two_runtimes();
#endif
  for (int i = 0; i < QBNN_TV_NUM_IMAGES; ++i) bad += check_image(i, QBNN_KERNEL_AUTO, 1);
#if QBNN_TV_HAS_HYBRID
  for (int i = 0; i < QBNN_TV_NUM_IMAGES; ++i) bad += check_modes(i, QBNN_KERNEL_AUTO, 1);
  /* the hybrid's later layers on every kernel */
  for (int k = QBNN_KERNEL_REF; k <= QBNN_KERNEL_SIMD; ++k) bad += check_modes(0, k, 1);
#endif
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
