/* Minimal Cortex-M startup for QEMU's boards (ARMv6-M, ARMv7-M, ARMv8-M Mainline): vector table,
   .data/.bss init, FPU enable, the console (console.c), and fault handlers that report through semihosting and
   exit non-zero (so a fault fails CI). No vector is left 0: a 0 entry would lock the core up. */
#include <stdint.h>
#include "console.h"
#include "semihost.h"

extern uint32_t __etext, __data_start__, __data_end__, __bss_start__, __bss_end__, __StackTop;
extern int main(void);

void Reset_Handler(void);
void Fault_Handler(void);
void Default_Handler(void);
void SysTick_Handler(void) __attribute__((weak, alias("Default_Handler")));

__attribute__((section(".isr_vector"), used))
const void *const vector_table[16 + 32] = {
    &__StackTop, (void *)Reset_Handler,
    (void *)Fault_Handler, /* NMI */
    (void *)Fault_Handler, /* HardFault */
    (void *)Fault_Handler, /* MemManage */
    (void *)Fault_Handler, /* BusFault */
    (void *)Fault_Handler, /* UsageFault */
    (void *)Fault_Handler, /* SecureFault (ARMv8-M with the security extension; reserved before) */
    0, 0, 0, /* reserved */
    (void *)Default_Handler, /* SVC */
    (void *)Default_Handler, /* DebugMon */
    0,
    (void *)Default_Handler, /* PendSV */
    (void *)SysTick_Handler,
    /* external IRQs: none used */
};

void Reset_Handler(void) {
  uint32_t *src = &__etext, *dst = &__data_start__;
  while (dst < &__data_end__) *dst++ = *src++;
  for (dst = &__bss_start__; dst < &__bss_end__;) *dst++ = 0;
#if defined(__ARM_FP)
  /* CPACR: full access to CP10/CP11, otherwise the first float instruction faults. */
  *(volatile uint32_t *)0xE000ED88 |= 0xFu << 20;
  __asm volatile("dsb\n isb" ::: "memory");
#endif
  console_init();
  semihost_exit(main());
}

/* Exception number (3 HardFault, 4 MemManage, 5 BusFault, 6 UsageFault, 7 SecureFault), CFSR,
   HFSR, the faulting address registers and, on ARMv8-M, SFSR/SFAR (ARMv6-M has none of these registers: the
   exception number only). */
void Fault_Handler(void) {
  uint32_t ipsr;
  __asm volatile("mrs %0, ipsr" : "=r"(ipsr));
  semihost_write0("FAULT: exception ");
  semihost_write_hex(ipsr & 0x1FFu);
#if !defined(__ARM_ARCH_6M__)
  semihost_write0(" CFSR=");
  semihost_write_hex(*(volatile uint32_t *)0xE000ED28);
  semihost_write0(" HFSR=");
  semihost_write_hex(*(volatile uint32_t *)0xE000ED2C);
  semihost_write0(" MMFAR=");
  semihost_write_hex(*(volatile uint32_t *)0xE000ED34);
  semihost_write0(" BFAR=");
  semihost_write_hex(*(volatile uint32_t *)0xE000ED38);
#endif
#if defined(__ARM_ARCH_8M_MAIN__) || defined(__ARM_ARCH_8_1M_MAIN__)
  semihost_write0(" SFSR=");
  semihost_write_hex(*(volatile uint32_t *)0xE000EDE4);
  semihost_write0(" SFAR=");
  semihost_write_hex(*(volatile uint32_t *)0xE000EDE8);
#endif
  semihost_write0("\n");
  semihost_exit(3);
}

void Default_Handler(void) {
  semihost_write0("FAULT: unexpected exception\n");
  semihost_exit(4);
}
