# lpaccel — every target creates .venv/ from PyPI on first use.
PYTHON  ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
BOARD   ?= ulx3s-85f
DESIGN  ?=
JOBS    ?= 2

.PHONY: demo test lint test-slow mutate bench bitstream firmware clean distclean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/lpaccel demo
	$(BIN)/lpaccel build --board $(BOARD)

test: lint
	$(BIN)/python -m pytest -n $(JOBS) --durations=30 tests

# ruff with the project's rules, then the layer contracts (docs/architecture.md).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python tools/layers.py

test-slow: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) -m slow --run-slow tests

# Mutation testing of the gateware (docs/verification.md): each catalogue entry applied
# in a scratch copy under build/mutate/, its tests run; table and score in build/mutate/.
mutate: $(STAMP)
	$(BIN)/python tools/mutate.py --jobs 1

bench: $(STAMP)
	$(BIN)/lpaccel bench --out build/bench

bitstream: $(STAMP)
	$(BIN)/lpaccel build --board $(BOARD)$(if $(DESIGN), --design $(DESIGN))

# C firmware (firmware/README.md): the register header generated from the RDL, the host
# tool lpaccel-fw with cc, the library cross-compiled for riscv32 with zig cc.
firmware: $(STAMP)
	$(MAKE) -f firmware/firmware.mk BIN=$(BIN)

clean:
	rm -rf build sim_build .pytest_cache

distclean: clean
	rm -rf $(VENV)
