/* Instruction counter for QEMU's Cortex-M boards run with `-icount shift=0`: every instruction
   then advances virtual time by 1 ns, and SysTick (CLKSOURCE = processor clock) ticks at the
   board's ICOUNT_SYSTICK_HZ (Makefile board block: 25 MHz on an385/an386/an500, 20 MHz on an505,
   32 MHz on an547), i.e. one tick per 1e9 / ICOUNT_SYSTICK_HZ instructions (40, 50, 31.25).
   Exact and deterministic; not cycles. Resolution one tick: measure long loops and divide.
   `make hello` checks the scale against a loop of a known instruction count. */
#ifndef QBNN_ICOUNT_H_
#define QBNN_ICOUNT_H_
#include <stdint.h>

#ifndef ICOUNT_SYSTICK_HZ
#error "ICOUNT_SYSTICK_HZ (the board's SysTick clock in Hz) must come from the board (Makefile)"
#endif

void icount_start(void);
/* Instructions executed since icount_start() (ticks * 1e9 / ICOUNT_SYSTICK_HZ, rounded down). */
uint64_t icount_now(void);

#endif
