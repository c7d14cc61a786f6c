# lpaccel — every target creates .venv/ from PyPI on first use.
PYTHON  ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
BOARD   ?= ulx3s-85f
DESIGN  ?=
JOBS    ?= 2

.PHONY: demo test test-slow bench bitstream clean distclean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/lpaccel demo
	$(BIN)/lpaccel build --board $(BOARD)

test: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) tests

test-slow: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) -m slow --run-slow tests

bench: $(STAMP)
	$(BIN)/lpaccel bench --out build/bench

bitstream: $(STAMP)
	$(BIN)/lpaccel build --board $(BOARD)$(if $(DESIGN), --design $(DESIGN))

clean:
	rm -rf build sim_build .pytest_cache

distclean: clean
	rm -rf $(VENV)
