#include "console.h"

#include <stdint.h>
#include <stdio.h>

#include "semihost.h"

#define REG(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

#if defined(QBNN_CONSOLE_STM32_USART)
/* STM32F4 USART: SR (TXE = bit 7), DR, BRR, CR1 (UE = bit 13, TE = bit 3). The clock enable is USART1's
   (RCC APB2ENR bit 4); the TX pin's alternate function (PA9 / PB6, AF7) is the board's to set. */
#define U QBNN_CONSOLE_STM32_USART
void console_init(void) {
  if (U == 0x40011000u) REG(0x40023844u) |= 1u << 4;
  REG(U + 0x08) = 0x2D9u; /* 115200 baud from an 84 MHz APB2 */
  REG(U + 0x0C) = (1u << 13) | (1u << 3);
  setvbuf(stdout, NULL, _IONBF, 0);
}
void console_putc(char c) {
  while (!(REG(U + 0x00) & 0x80u)) {
  }
  REG(U + 0x04) = (uint8_t)c;
}
#elif defined(QBNN_CONSOLE_NRF51_UART)
/* nRF51 UART: ENABLE = 4, TASKS_STARTTX, then per byte TXD and EVENTS_TXDRDY. PSELTXD (the TX pin, 24 on the
   micro:bit) and BAUDRATE (115200) set here; on another nRF51 board change the pin. */
#define U QBNN_CONSOLE_NRF51_UART
void console_init(void) {
  REG(U + 0x50C) = 24u;          /* PSELTXD */
  REG(U + 0x524) = 0x01D7E000u;  /* BAUDRATE 115200 */
  REG(U + 0x500) = 4u;           /* ENABLE */
  REG(U + 0x008) = 1u;           /* TASKS_STARTTX */
  setvbuf(stdout, NULL, _IONBF, 0);
}
void console_putc(char c) {
  REG(U + 0x11C) = 0u; /* EVENTS_TXDRDY */
  REG(U + 0x51C) = (uint8_t)c;
  while (!REG(U + 0x11C)) {
  }
}
#else
extern void initialise_monitor_handles(void);
void console_init(void) { initialise_monitor_handles(); }
void console_putc(char c) {
  const char s[2] = {c, 0};
  semihost_write0(s);
}
#endif

#if defined(QBNN_CONSOLE_STM32_USART) || defined(QBNN_CONSOLE_NRF51_UART)
/* newlib's output system call (nosys.specs): stdout and stderr to the UART, unchanged bytes. */
int _write(int fd, const char *buf, int n) {
  (void)fd;
  for (int i = 0; i < n; ++i) console_putc(buf[i]);
  return n;
}
#endif
