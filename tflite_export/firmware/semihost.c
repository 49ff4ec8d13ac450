#include "semihost.h"

static uint32_t semihost_call(uint32_t op, const void *arg) {
  register uint32_t r0 __asm("r0") = op;
  register const void *r1 __asm("r1") = arg;
  __asm volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

void semihost_write0(const char *s) { semihost_call(0x04, s); }

void semihost_write_hex(uint32_t v) {
  char buf[11] = "0x";
  for (int i = 0; i < 8; ++i) buf[2 + i] = "0123456789abcdef"[(v >> (28 - 4 * i)) & 0xF];
  buf[10] = 0;
  semihost_write0(buf);
}

void semihost_exit(int code) {
  /* ADP_Stopped_ApplicationExit with a sub-code (SYS_EXIT_EXTENDED = 0x20). */
  uint32_t block[2] = {0x20026u, (uint32_t)code};
  for (;;) semihost_call(0x20, block);
}
