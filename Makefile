# lpaccel — every target creates .venv/ from PyPI on first use.
PYTHON  ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
BOARD   ?= ulx3s-85f
DESIGN  ?=
JOBS    ?= 2

.PHONY: demo test lint test-slow bench bitstream clean distclean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/lpaccel demo
	$(BIN)/lpaccel build --board $(BOARD)

test: lint
	$(BIN)/python -m pytest -n $(JOBS) tests

# ruff with the project's rules, then the layer contracts (docs/architecture.md).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python tools/layers.py

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
