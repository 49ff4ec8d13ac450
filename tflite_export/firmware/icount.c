#include "icount.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018)

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
  return ticks * 1000000000u / ICOUNT_SYSTICK_HZ;
}
