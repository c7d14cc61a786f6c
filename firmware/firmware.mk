# The C firmware build, run by the top Makefile's `firmware` target
# (firmware/README.md): `make -f firmware/firmware.mk BIN=.venv/bin`.
#
#   build/firmware/regmap/   lpaccel_regs.h (peakrdl-cheader, from the RDL: `lpaccel regmap`)
#   build/firmware/gen/      lpaccel_codes.h (RDL enums), lpaccel_vectors.h (golden GEMVs)
#   build/firmware/host/     lpaccel-fw, lpaccel-fw-codec, lpaccel_regs_test (system cc)
#   build/firmware/riscv32/  lpaccel.o, lpaccel_link.o, lpaccel_mmio.o (zig cc, riscv32
#                            freestanding) and soft_cpu.elf (examples/soft_cpu.c linked
#                            with the library and the MMIO HAL, nothing else)

BIN     ?= .venv/bin
FW      := firmware
OUT     ?= build/firmware
GEN     := $(OUT)/gen
REGDIR  := $(OUT)/regmap
HOSTDIR := $(OUT)/host
RVDIR   := $(OUT)/riscv32

CC      ?= cc
HOST_CFLAGS := -std=c99 -Wall -Wextra -Werror -pedantic -O2
ZIGCC   := $(BIN)/python -m ziglang cc
# -O2: zig cc's default (debug) build instruments for UBSan, whose runtime a
# freestanding target does not have.
RV_CFLAGS := -target riscv32-freestanding -std=c99 -Wall -Wextra -Werror -pedantic \
             -ffreestanding -nostdlib -O2
INC     := -I$(FW)/include -I$(REGDIR) -I$(GEN)

LIB_SRC := $(FW)/src/lpaccel.c $(FW)/src/lpaccel_link.c
LIB_HDR := $(FW)/include/lpaccel.h $(FW)/include/lpaccel_link.h $(FW)/include/lpaccel_mmio.h
GEN_HDR := $(REGDIR)/lpaccel_regs.h $(GEN)/lpaccel_codes.h
HOST_SRC := $(FW)/host/serial.c $(FW)/host/lpaccel_fw.c
HOST_HDR := $(FW)/host/serial.h $(GEN)/lpaccel_vectors.h

.PHONY: all generate
.DELETE_ON_ERROR:

all: $(HOSTDIR)/lpaccel-fw $(HOSTDIR)/lpaccel-fw-codec $(HOSTDIR)/lpaccel_regs_test \
     $(HOSTDIR)/lpaccel_mmio.o $(RVDIR)/lpaccel.o $(RVDIR)/lpaccel_link.o \
     $(RVDIR)/lpaccel_mmio.o $(RVDIR)/soft_cpu.elf
	$(HOSTDIR)/lpaccel_regs_test
	@echo "firmware: $(HOSTDIR)/lpaccel-fw and $(RVDIR)/*.o built"

# Generated headers are rewritten only when their text changes, so a rerun
# rebuilds nothing; the generators always run (cheap, and they depend on
# much of the Python tree).
generate:
	@mkdir -p $(GEN) $(REGDIR) $(OUT)/tmp
	$(BIN)/lpaccel regmap --out $(OUT)/tmp/regmap > /dev/null
	$(BIN)/python -m lpaccel.firmware.gen_codes $(OUT)/tmp/lpaccel_codes.h
	$(BIN)/python -m lpaccel.firmware.gen_vectors $(OUT)/tmp/lpaccel_vectors.h
	@for f in regmap/lpaccel_regs.h regmap/lpaccel_regs.h.test.c; do \
	    cmp -s $(OUT)/tmp/$$f $(OUT)/$$f || cp $(OUT)/tmp/$$f $(OUT)/$$f; done
	@for f in lpaccel_codes.h lpaccel_vectors.h; do \
	    cmp -s $(OUT)/tmp/$$f $(GEN)/$$f || cp $(OUT)/tmp/$$f $(GEN)/$$f; done

$(GEN_HDR) $(GEN)/lpaccel_vectors.h $(REGDIR)/lpaccel_regs.h.test.c: generate
	@:

$(HOSTDIR)/lpaccel-fw: $(LIB_SRC) $(LIB_HDR) $(GEN_HDR) $(HOST_SRC) $(HOST_HDR)
	@mkdir -p $(HOSTDIR)
	$(CC) $(HOST_CFLAGS) $(INC) -I$(FW)/host $(LIB_SRC) $(HOST_SRC) -o $@

$(HOSTDIR)/lpaccel-fw-codec: $(FW)/host/codec_check.c $(LIB_SRC) $(LIB_HDR) $(GEN_HDR)
	@mkdir -p $(HOSTDIR)
	$(CC) $(HOST_CFLAGS) $(INC) $(LIB_SRC) $(FW)/host/codec_check.c -o $@

# peakrdl-cheader's own check of the register offsets in lpaccel_t.
$(HOSTDIR)/lpaccel_regs_test: $(REGDIR)/lpaccel_regs.h.test.c $(REGDIR)/lpaccel_regs.h
	@mkdir -p $(HOSTDIR)
	$(CC) -std=c99 -Wall -Wextra -Werror -I$(REGDIR) $< -o $@

$(HOSTDIR)/lpaccel_mmio.o: $(FW)/src/lpaccel_mmio.c $(LIB_HDR) $(GEN_HDR)
	@mkdir -p $(HOSTDIR)
	$(CC) $(HOST_CFLAGS) $(INC) -c $< -o $@

$(RVDIR)/%.o: $(FW)/src/%.c $(LIB_HDR) $(GEN_HDR)
	@mkdir -p $(RVDIR)
	$(ZIGCC) $(RV_CFLAGS) $(INC) -c $< -o $@

# A whole program, linked with no libc, start files or runtime library.
$(RVDIR)/soft_cpu.elf: $(FW)/examples/soft_cpu.c $(FW)/src/lpaccel.c $(FW)/src/lpaccel_mmio.c \
                       $(LIB_HDR) $(GEN_HDR)
	@mkdir -p $(RVDIR)
	$(ZIGCC) $(RV_CFLAGS) $(INC) $(FW)/examples/soft_cpu.c $(FW)/src/lpaccel.c \
	    $(FW)/src/lpaccel_mmio.c -o $@
