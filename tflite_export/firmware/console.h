/* The board's console (boards.mk .CONSOLE): semihosting through newlib's rdimon, or a UART that newlib's
   _write drives (QBNN_CONSOLE_STM32_USART / QBNN_CONSOLE_NRF51_UART = the peripheral's base address). */
#ifndef QBNN_CONSOLE_H_
#define QBNN_CONSOLE_H_

/* Called once before main: semihosting's file handles, or the UART's clock, baud rate and transmitter. */
void console_init(void);
/* One byte out, waiting for the transmitter (UART consoles; semihosting: SYS_WRITE0 of one character). */
void console_putc(char c);

#endif
