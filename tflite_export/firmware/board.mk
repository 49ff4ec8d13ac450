# The settings of one board of boards.mk (BOARD=...): memory map, CPU flags, console. Included by this folder's
# Makefile and by tflm_example/Makefile after boards.mk.
BOARDS := $(sort $(patsubst %.MACHINE,%,$(filter %.MACHINE,$(.VARIABLES))))
ifeq ($(filter $(BOARD),$(BOARDS)),)
$(error BOARD=$(BOARD) is not supported; boards: $(BOARDS))
endif
MACHINE := $($(BOARD).MACHINE)
CPU_FLAGS := $($(BOARD).CPU)
FLASH_ORIGIN := $(word 1,$($(BOARD).FLASH))
FLASH_LENGTH := $(word 2,$($(BOARD).FLASH))
RAM_ORIGIN := $(word 1,$($(BOARD).RAM))
RAM_LENGTH := $(word 2,$($(BOARD).RAM))
SYSTICK_HZ := $($(BOARD).SYSTICK_HZ)
ARCH := $($(BOARD).ARCH)
# console: semihosting (newlib's rdimon), or a UART driver (console.c, newlib's nosys stubs; QEMU's first -serial
# to stdout). The exit status always goes through semihosting (QEMU).
CONSOLE := $($(BOARD).CONSOLE)
CONSOLE_KIND := $(word 1,$(subst @, ,$(CONSOLE)))
CONSOLE_ADDR := $(word 2,$(subst @, ,$(CONSOLE)))
ifeq ($(CONSOLE_KIND),semihosting)
CONSOLE_FLAGS := -DQBNN_CONSOLE_SEMIHOSTING=1
CONSOLE_SPECS := --specs=rdimon.specs
QEMU_SERIAL := -serial none
else
CONSOLE_FLAGS := -DQBNN_CONSOLE_$(shell echo $(CONSOLE_KIND) | tr a-z- A-Z_)=$(CONSOLE_ADDR)u
CONSOLE_SPECS := --specs=nosys.specs
QEMU_SERIAL := -serial stdio
endif
# the data memory's size as a C constant expression (16K -> (16*1024)), for checks that need room
RAM_BYTES := ($(subst M,*1048576,$(subst K,*1024,$(RAM_LENGTH))))
