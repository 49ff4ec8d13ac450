# QEMU Cortex-M boards, one block each (read by this folder's Makefile and by tflm_example/Makefile):
# <board>.MACHINE (QEMU -M), .CORE (description), .CPU (gcc flags),
# .FLASH / .RAM (origin and size of the code and data memories), .SYSTICK_HZ (SysTick clock with
# CLKSOURCE = processor clock: under -icount shift=0 one instruction is 1 ns, so the instruction
# counter scales ticks by 1e9 / SYSTICK_HZ; checked against a known instruction count by `hello`).
an385.MACHINE := mps2-an385
an385.CORE := Cortex-M3
an385.CPU := -mcpu=cortex-m3 -mthumb -mfloat-abi=soft
an385.FLASH := 0x00000000 4M
an385.RAM := 0x20000000 4M
an385.SYSTICK_HZ := 25000000

an386.MACHINE := mps2-an386
an386.CORE := Cortex-M4F
an386.CPU := -mcpu=cortex-m4 -mthumb -mfpu=fpv4-sp-d16 -mfloat-abi=hard
an386.FLASH := 0x00000000 4M
an386.RAM := 0x20000000 4M
an386.SYSTICK_HZ := 25000000

an500.MACHINE := mps2-an500
an500.CORE := Cortex-M7
an500.CPU := -mcpu=cortex-m7 -mthumb -mfpu=fpv5-d16 -mfloat-abi=hard
an500.FLASH := 0x00000000 4M
an500.RAM := 0x20000000 4M
an500.SYSTICK_HZ := 25000000

# an505 boots in the secure state: code and data through the secure aliases of SSRAM1 / SSRAM2.
an505.MACHINE := mps2-an505
an505.CORE := Cortex-M33
an505.CPU := -mcpu=cortex-m33 -mthumb -mfpu=fpv5-sp-d16 -mfloat-abi=hard
an505.FLASH := 0x10000000 4M
an505.RAM := 0x38000000 2M
an505.SYSTICK_HZ := 20000000

# an547: ITCM (code) and DTCM (data), 512K each.
an547.MACHINE := mps3-an547
an547.CORE := Cortex-M55
an547.CPU := -mcpu=cortex-m55 -mthumb -mfloat-abi=hard
an547.FLASH := 0x00000000 512K
an547.RAM := 0x20000000 512K
an547.SYSTICK_HZ := 32000000
