/* Direct ARM semihosting calls (no libc): used by the fault handlers and for the exit code. */
#ifndef QBNN_SEMIHOST_H_
#define QBNN_SEMIHOST_H_
#include <stdint.h>

void semihost_write0(const char *s);
void semihost_write_hex(uint32_t v);
/* SYS_EXIT_EXTENDED: QEMU returns `code` as its own exit status. Never returns. */
void semihost_exit(int code) __attribute__((noreturn));

#endif
