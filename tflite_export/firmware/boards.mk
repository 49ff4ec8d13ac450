# QEMU Cortex-M boards, one block each: the only board table. Read by this folder's Makefile, tflm_example/Makefile,
# tflite_export/firmware_runner.BOARDS (the tests iterate over it) and the bundle's CMake board settings
# (tflite_export/bundle.py). Adding a board is one block.
#   .MACHINE     QEMU -M
#   .CORE        description
#   .ARCH        armv6-m | armv7-m | armv7e-m | armv8-m.main | armv8.1-m.main (v6-M: no CFSR, no LDRD, no DWT cycle counter)
#   .CPU         gcc flags
#   .FPU .DSP .MVE   what .CPU enables: FPU none | sp | dp; DSP yes | no (SMLAD); MVE none | int | float (Helium)
#   .FLASH .RAM  origin and size of the code and data memories
#   .STACK .HEAP stack and heap reserved by link.ld (the part's RAM must hold them, .data and .bss)
#   .CONSOLE     semihosting, or the UART QEMU connects to -serial: stm32-usart@ADDR | nrf51-uart@ADDR
#   .SYSTICK_HZ  the processor clock (SysTick CLKSOURCE = processor): under -icount shift=0 one instruction is 1 ns,
#                so the instruction counter scales ticks by 1e9 / SYSTICK_HZ; checked against a known count by `hello`
#   .CYCLES      cycle counter a real part has: dwt (DWT CYCCNT, M3 and above) | none; QEMU implements neither
#                CYCCNT nor cycles, so every emulated run counts instructions through SysTick (icount.c)
an385.MACHINE := mps2-an385
an385.CORE := Cortex-M3
an385.ARCH := armv7-m
an385.CPU := -mcpu=cortex-m3 -mthumb -mfloat-abi=soft
an385.FPU := none
an385.DSP := no
an385.MVE := none
an385.FLASH := 0x00000000 4M
an385.RAM := 0x20000000 4M
an385.STACK := 16K
an385.HEAP := 4K
an385.CONSOLE := semihosting
an385.SYSTICK_HZ := 25000000
an385.CYCLES := dwt

an386.MACHINE := mps2-an386
an386.CORE := Cortex-M4F
an386.ARCH := armv7e-m
an386.CPU := -mcpu=cortex-m4 -mthumb -mfpu=fpv4-sp-d16 -mfloat-abi=hard
an386.FPU := sp
an386.DSP := yes
an386.MVE := none
an386.FLASH := 0x00000000 4M
an386.RAM := 0x20000000 4M
an386.STACK := 16K
an386.HEAP := 4K
an386.CONSOLE := semihosting
an386.SYSTICK_HZ := 25000000
an386.CYCLES := dwt

an500.MACHINE := mps2-an500
an500.CORE := Cortex-M7
an500.ARCH := armv7e-m
an500.CPU := -mcpu=cortex-m7 -mthumb -mfpu=fpv5-d16 -mfloat-abi=hard
an500.FPU := dp
an500.DSP := yes
an500.MVE := none
an500.FLASH := 0x00000000 4M
an500.RAM := 0x20000000 4M
an500.STACK := 16K
an500.HEAP := 4K
an500.CONSOLE := semihosting
an500.SYSTICK_HZ := 25000000
an500.CYCLES := dwt

# an505 boots in the secure state: code and data through the secure aliases of SSRAM1 / SSRAM2.
an505.MACHINE := mps2-an505
an505.CORE := Cortex-M33
an505.ARCH := armv8-m.main
an505.CPU := -mcpu=cortex-m33 -mthumb -mfpu=fpv5-sp-d16 -mfloat-abi=hard
an505.FPU := sp
an505.DSP := yes
an505.MVE := none
an505.FLASH := 0x10000000 4M
an505.RAM := 0x38000000 2M
an505.STACK := 16K
an505.HEAP := 4K
an505.CONSOLE := semihosting
an505.SYSTICK_HZ := 20000000
an505.CYCLES := dwt

# an521 (dual SSE-200): the core that boots has no FPU and no DSP in QEMU (the an505 flags fault: NOCP).
an521.MACHINE := mps2-an521
an521.CORE := Cortex-M33 (no FPU, no DSP)
an521.ARCH := armv8-m.main
an521.CPU := -mcpu=cortex-m33+nofp+nodsp -mthumb -mfloat-abi=soft
an521.FPU := none
an521.DSP := no
an521.MVE := none
an521.FLASH := 0x10000000 4M
an521.RAM := 0x38000000 2M
an521.STACK := 16K
an521.HEAP := 4K
an521.CONSOLE := semihosting
an521.SYSTICK_HZ := 20000000
an521.CYCLES := dwt

# an524 (MPS3 SSE-200): code in BRAM, data in the SSE's internal SRAM, both through their secure aliases.
an524.MACHINE := mps3-an524
an524.CORE := Cortex-M33 (no FPU, no DSP)
an524.ARCH := armv8-m.main
an524.CPU := -mcpu=cortex-m33+nofp+nodsp -mthumb -mfloat-abi=soft
an524.FPU := none
an524.DSP := no
an524.MVE := none
an524.FLASH := 0x10000000 512K
an524.RAM := 0x30000000 128K
an524.STACK := 16K
an524.HEAP := 4K
an524.CONSOLE := semihosting
an524.SYSTICK_HZ := 32000000
an524.CYCLES := dwt

# an547: ITCM (code) and DTCM (data), 512K each.
an547.MACHINE := mps3-an547
an547.CORE := Cortex-M55
an547.ARCH := armv8.1-m.main
an547.CPU := -mcpu=cortex-m55 -mthumb -mfloat-abi=hard
an547.FPU := dp
an547.DSP := yes
an547.MVE := float
an547.FLASH := 0x00000000 512K
an547.RAM := 0x20000000 512K
an547.STACK := 16K
an547.HEAP := 4K
an547.CONSOLE := semihosting
an547.SYSTICK_HZ := 32000000
an547.CYCLES := dwt

# Netduino Plus 2: STM32F405 (1 MB flash, 128 KB SRAM); console on USART1 (QEMU's first -serial).
netduinoplus2.MACHINE := netduinoplus2
netduinoplus2.CORE := Cortex-M4F (STM32F405)
netduinoplus2.ARCH := armv7e-m
netduinoplus2.CPU := -mcpu=cortex-m4 -mthumb -mfpu=fpv4-sp-d16 -mfloat-abi=hard
netduinoplus2.FPU := sp
netduinoplus2.DSP := yes
netduinoplus2.MVE := none
netduinoplus2.FLASH := 0x08000000 1M
netduinoplus2.RAM := 0x20000000 128K
netduinoplus2.STACK := 16K
netduinoplus2.HEAP := 4K
netduinoplus2.CONSOLE := stm32-usart@0x40011000
netduinoplus2.SYSTICK_HZ := 168000000
netduinoplus2.CYCLES := dwt

# BBC micro:bit: nRF51822 (256 KB flash, 16 KB RAM), Cortex-M0; console on the nRF51 UART.
microbit.MACHINE := microbit
microbit.CORE := Cortex-M0 (nRF51822)
microbit.ARCH := armv6-m
microbit.CPU := -mcpu=cortex-m0 -mthumb -mfloat-abi=soft
microbit.FPU := none
microbit.DSP := no
microbit.MVE := none
microbit.FLASH := 0x00000000 256K
microbit.RAM := 0x20000000 16K
microbit.STACK := 1536
microbit.HEAP := 1K
microbit.CONSOLE := nrf51-uart@0x40002000
microbit.SYSTICK_HZ := 16000000
microbit.CYCLES := none
