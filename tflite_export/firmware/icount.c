#include "icount.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018)

/* 1e9 / ICOUNT_SYSTICK_HZ in lowest terms (1e9 = 2^9 5^9): a multiply by a small constant and, for most clocks,
   a shift (16 MHz: x 125 / 2); a general 64-bit division would cost ~400 instructions on ARMv6-M. */
#define ICOUNT_POW2(d) ((d) % 512 == 0 ? 512 : (d) % 256 == 0 ? 256 : (d) % 128 == 0 ? 128 : (d) % 64 == 0 ? 64 \
  : (d) % 32 == 0 ? 32 : (d) % 16 == 0 ? 16 : (d) % 8 == 0 ? 8 : (d) % 4 == 0 ? 4 : (d) % 2 == 0 ? 2 : 1)
#define ICOUNT_POW5(d) ((d) % 1953125 == 0 ? 1953125 : (d) % 390625 == 0 ? 390625 : (d) % 78125 == 0 ? 78125 \
  : (d) % 15625 == 0 ? 15625 : (d) % 3125 == 0 ? 3125 : (d) % 625 == 0 ? 625 : (d) % 125 == 0 ? 125 \
  : (d) % 25 == 0 ? 25 : (d) % 5 == 0 ? 5 : 1)
#define ICOUNT_GCD (ICOUNT_POW2(ICOUNT_SYSTICK_HZ) * ICOUNT_POW5(ICOUNT_SYSTICK_HZ))
#define ICOUNT_NUM (1000000000u / ICOUNT_GCD)
#define ICOUNT_DEN (ICOUNT_SYSTICK_HZ / ICOUNT_GCD)

static volatile uint32_t wraps;

void SysTick_Handler(void) { wraps++; }

void icount_start(void) {
  SYST_CSR = 0;
  SYST_RVR = 0x00FFFFFFu;
  SYST_CVR = 0;
  wraps = 0;
  SYST_CSR = 0x7u; /* enable, interrupt on wrap, processor clock */
  while (SYST_CVR == 0) { /* the first tick loads RVR */
  }
  wraps = 0;
}

uint64_t icount_now(void) {
  uint32_t w, v;
  do { /* re-read if a wrap happened in between */
    w = wraps;
    v = SYST_CVR;
  } while (w != wraps);
  uint64_t ticks = (uint64_t)w * 0x01000000u + (0x00FFFFFFu - v);
  return ticks * ICOUNT_NUM / ICOUNT_DEN;
}
