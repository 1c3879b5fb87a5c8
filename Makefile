# Set-up on a fresh machine: `make demo` (the whole job on generated videos), `make test` (lint + tests).
# Both create .venv on first use: the CPU build of torch first, then hl with its test extras.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/hl demo --out hl-demo

test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python benchmarks/extract.py
	$(BIN)/python benchmarks/train_heads.py

.PHONY: install demo test bench
