# Two entry points (see README): `make demo` runs the main job, `make test` runs the lint, format
# and type gates (`make lint`) and then the tests.
# Both create or reuse .venv. On CPU-only machines the CPU torch wheel is installed first;
# a venv that already has torch (e.g. a CUDA build) keeps it.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.archopt-installed

.PHONY: setup demo test lint bench bench-full clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/archopt demo

# The gates first (ruff check, ruff format --check, mypy), then the tests.
test: lint
	$(BIN)/python -m pytest -q tests

# Lint, format check and type check (configured in pyproject.toml, installed by the dev extra).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Every benchmark script in a quick mode (reports in results/quick/, a summary table at the end);
# bench-full re-runs them as the README's reproduce lines do (reports in results/).
bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

bench-full: $(STAMP)
	$(BIN)/python benchmarks/run_all.py --full

clean:
	rm -rf $(VENV) .pytest_cache
