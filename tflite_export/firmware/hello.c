/* Bring-up: printf over semihosting, exit code, instruction counter (checked against a loop of a
   known instruction count), optional forced fault (FORCE_FAULT=1 bus fault on a write to an
   unmapped address, FORCE_FAULT=2 UNALIGNED UsageFault from LDRD on a 2-aligned address; ARMv6-M has no LDRD and
   faults on every unaligned word load: a HardFault from LDR). */
#include <stdio.h>
#include "icount.h"

#define KNOWN_LOOPS 100000u /* SUBS + BNE: exactly 2 instructions per iteration */

int main(void) {
  volatile int sink = 0;
  icount_start();
  uint64_t t0 = icount_now();
  for (int i = 0; i < 100000; ++i) sink += i;
  uint64_t t1 = icount_now();
  printf("hello from %s: loop of 100000 took %lu instructions\n", BOARD_NAME, (unsigned long)(t1 - t0));
  uint32_t n = KNOWN_LOOPS;
  t0 = icount_now();
  __asm volatile(".syntax unified\n1: subs %0, %0, #1\n\t bne 1b" : "+r"(n) : : "cc");
  t1 = icount_now();
  printf("known loop: %lu instructions measured %lu (SysTick %lu Hz)\n", 2ul * KNOWN_LOOPS, (unsigned long)(t1 - t0),
         (unsigned long)ICOUNT_SYSTICK_HZ);
#if defined(FORCE_FAULT) && FORCE_FAULT == 2
  static volatile uint32_t words[4];
  uint32_t a, b;
#if defined(__ARM_ARCH_6M__)
  __asm volatile("ldr %0, [%1]" : "=r"(a) : "r"((const char *)words + 2) : "memory");
  b = 0;
#else
  __asm volatile("ldrd %0, %1, [%2]" : "=r"(a), "=r"(b) : "r"((const char *)words + 2) : "memory");
#endif
  sink = (int)(a + b);
#elif defined(FORCE_FAULT) && defined(__ARM_ARCH_6M__)
  *(volatile int *)0x60000000 = 1; /* the nRF51 ignores writes at 0xFFFFFFF0; nothing is mapped here */
#elif defined(FORCE_FAULT)
  *(volatile int *)0xFFFFFFF0 = 1;
#endif
  return HELLO_EXIT;
}
