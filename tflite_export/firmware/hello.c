/* Bring-up: printf over semihosting, exit code, instruction counter, optional forced fault. */
#include <stdio.h>
#include "icount.h"

int main(void) {
  volatile int sink = 0;
  icount_start();
  uint64_t t0 = icount_now();
  for (int i = 0; i < 100000; ++i) sink += i;
  uint64_t t1 = icount_now();
  printf("hello from %s: loop of 100000 took %lu instructions\n", BOARD_NAME, (unsigned long)(t1 - t0));
#ifdef FORCE_FAULT
  *(volatile int *)0xFFFFFFF0 = 1;
#endif
  return HELLO_EXIT;
}
