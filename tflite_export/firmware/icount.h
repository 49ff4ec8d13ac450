/* Instruction counter for QEMU's mps2 boards run with `-icount shift=0`: every instruction then
   advances virtual time by 1 ns, and SysTick on the 25 MHz core clock ticks once per 40 ns, so
   one SysTick tick = 40 instructions (exact, deterministic; not cycles). Resolution 40 instructions:
   measure long loops and divide. */
#ifndef QBNN_ICOUNT_H_
#define QBNN_ICOUNT_H_
#include <stdint.h>

#define ICOUNT_INSN_PER_TICK 40u

void icount_start(void);
/* Instructions executed since icount_start() (multiple of ICOUNT_INSN_PER_TICK). */
uint64_t icount_now(void);

#endif
