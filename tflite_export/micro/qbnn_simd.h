/* SIMD primitives shared by the C kernels (micro/ops, qbnn_modes.c): the real instructions on DSP
   targets (Cortex-M4/M7/M33/M55), their C emulation elsewhere so the SIMD paths run in host tests.
   QBNN_HAVE_MVE: Helium (M-profile vector extension, integer: Cortex-M55/M85), used by hand-written loops. */
#ifndef QBNN_SIMD_H_
#define QBNN_SIMD_H_
#include <stdint.h>

#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1) && defined(__GNUC__)
#define QBNN_HAVE_MVE 1
#else
#define QBNN_HAVE_MVE 0
#endif

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#define QBNN_HAVE_DSP 1
/* one-operand byte-pair extensions: per halfword, zero- (uxtb16) or sign-extended (sxtb16) byte 0 / byte 2
   (ror #8: bytes 1 / 3) */
#define QBNN__EXTEND16(name, insn)                      \
  static inline uint32_t name(uint32_t x) {            \
    uint32_t r;                                         \
    __asm(insn : "=r"(r) : "r"(x));                     \
    return r;                                           \
  }
QBNN__EXTEND16(uxtb16, "uxtb16 %0, %1")
QBNN__EXTEND16(uxtb16_ror8, "uxtb16 %0, %1, ror #8")
QBNN__EXTEND16(sxtb16, "sxtb16 %0, %1")
QBNN__EXTEND16(sxtb16_ror8, "sxtb16 %0, %1, ror #8")
/* per halfword: a.h + zero_extend(byte 0 / byte 2 of b) (ror #8: bytes 1 / 3) */
static inline uint32_t uxtab16(uint32_t a, uint32_t b) {
  uint32_t r;
  __asm("uxtab16 %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
  return r;
}
static inline uint32_t uxtab16_ror8(uint32_t a, uint32_t b) {
  uint32_t r;
  __asm("uxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(b));
  return r;
}
static inline uint32_t pkhbt16(uint32_t lo, uint32_t hi) {
  uint32_t r;
  __asm("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(lo), "r"(hi));
  return r;
}
static inline int32_t smlad(uint32_t a, uint32_t b, int32_t acc) {
  int32_t r;
  __asm("smlad %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
  return r;
}
/* per signed byte: max(a, b) / min(a, b) (SSUB8 sets the GE flags SEL reads: one asm statement) */
static inline uint32_t max_s8x4(uint32_t a, uint32_t b) {
  uint32_t t, r;
  __asm("ssub8 %0, %2, %3\n\tsel %1, %2, %3" : "=&r"(t), "=r"(r) : "r"(a), "r"(b));
  return r;
}
static inline uint32_t min_s8x4(uint32_t a, uint32_t b) {
  uint32_t t, r;
  __asm("ssub8 %0, %2, %3\n\tsel %1, %3, %2" : "=&r"(t), "=r"(r) : "r"(a), "r"(b));
  return r;
}
#else
#define QBNN_HAVE_DSP 0
static inline uint32_t uxtb16(uint32_t x) { return x & 0x00FF00FFu; }
static inline uint32_t uxtb16_ror8(uint32_t x) { return (x >> 8) & 0x00FF00FFu; }
static inline uint32_t sxtb16(uint32_t x) {
  return (uint32_t)(uint16_t)(int16_t)(int8_t)(x & 0xFFu) | ((uint32_t)(uint16_t)(int16_t)(int8_t)(x >> 16) << 16);
}
static inline uint32_t sxtb16_ror8(uint32_t x) { return sxtb16(x >> 8); }
static inline uint32_t uxtab16(uint32_t a, uint32_t b) {
  return (((a & 0xFFFFu) + (b & 0xFFu)) & 0xFFFFu) | (((a >> 16) + ((b >> 16) & 0xFFu)) << 16);
}
static inline uint32_t uxtab16_ror8(uint32_t a, uint32_t b) { return uxtab16(a, b >> 8); }
static inline uint32_t pkhbt16(uint32_t lo, uint32_t hi) { return (lo & 0xFFFFu) | (hi << 16); }
static inline int32_t smlad(uint32_t a, uint32_t b, int32_t acc) {
  return acc + (int32_t)(int16_t)(a & 0xFFFFu) * (int16_t)(b & 0xFFFFu) +
         (int32_t)(int16_t)(a >> 16) * (int16_t)(b >> 16);
}
static inline uint32_t minmax_s8x4(uint32_t a, uint32_t b, int max) {
  uint32_t r = 0;
  for (int i = 0; i < 32; i += 8) {
    const int8_t x = (int8_t)(a >> i), y = (int8_t)(b >> i);
    r |= (uint32_t)(uint8_t)((x > y) == max ? x : y) << i;
  }
  return r;
}
static inline uint32_t max_s8x4(uint32_t a, uint32_t b) { return minmax_s8x4(a, b, 1); }
static inline uint32_t min_s8x4(uint32_t a, uint32_t b) { return minmax_s8x4(a, b, 0); }
#endif

/* x clamped to [-128, 127]: SSAT (ARMv6 and up, M3 included) */
#if defined(__ARM_FEATURE_SAT) && __ARM_FEATURE_SAT
static inline int32_t ssat8(int32_t x) {
  int32_t r;
  __asm("ssat %0, #8, %1" : "=r"(r) : "r"(x));
  return r;
}
#else
static inline int32_t ssat8(int32_t x) { return x < -128 ? -128 : (x > 127 ? 127 : x); }
#endif

#endif
