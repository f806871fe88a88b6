# `make demo` and `make test` each do all set-up on a fresh machine (Python 3.11, pip, a C compiler).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test test-all lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/bedflow run configs/derbyshire/baseline_2015_16.yaml --replications 20 --out runs/demo

lint: $(STAMP)
	$(BIN)/ruff check sim tests benchmarks

test: $(STAMP) lint
	$(BIN)/python -m pytest -q

test-all: $(STAMP) lint
	$(BIN)/python -m pytest -q -m ""

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	$(BIN)/bedflow bench

clean:
	rm -rf $(VENV) runs .pytest_cache
