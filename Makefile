# podwatch — the two commands a newcomer needs are `make run` and `make test`; both set themselves up.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BIN ?= $(shell command -v python3.13 2>/dev/null || echo /root/.pyenv/versions/3.13.0/bin/python3.13)
VENV := .venv
PY := $(VENV)/bin/python
SAM_VENV := .venv-sam
export PYTHONPATH := $(CURDIR)/layers/podwatch:$(CURDIR)/relay:$(CURDIR)/cli:$(CURDIR)
export SAM_CLI_TELEMETRY := 0
export PIP_DISABLE_PIP_VERSION_CHECK := 1

REPLAY ?= events/replay/sample-stream.jsonl
SUMMARY ?=
KEEP ?=

.PHONY: help setup run up down test lint typecheck unit sam-validate sam-build chart-tools chart bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(VENV)/.stamp: requirements-dev.txt layers/podwatch/requirements.txt relay/requirements.txt
	test -x $(PY) || $(PYTHON_BIN) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip check
	@# the operator CLI as a command in the venv (the project is not an installed distribution)
	@# it finds its checkout from its own path: worktrees that share this venv by a symlink run their own code
	printf '#!/bin/sh\nroot="$$(cd "$$(dirname "$$0")/../.." && pwd)"\nPYTHONPATH="$$root/cli:$$root/layers/podwatch$${PYTHONPATH:+:$$PYTHONPATH}" exec "$$root/$(PY)" -m podwatch_cli "$$@"\n' > $(VENV)/bin/podwatch && chmod +x $(VENV)/bin/podwatch
	touch $@

node_modules/.stamp: package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

$(SAM_VENV)/.stamp: requirements-sam.txt
	test -x $(SAM_VENV)/bin/python || $(PYTHON_BIN) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install -q -r requirements-sam.txt
	touch $@

setup: $(VENV)/.stamp node_modules/.stamp $(SAM_VENV)/.stamp chart-tools ## install everything (Python venvs, Restate server, helm tools)

run: $(VENV)/.stamp node_modules/.stamp ## start the local stack, replay REPLAY, print what happened and the timeline page's URL (SUMMARY=<file> for JSON; KEEP=1 keeps it up until Ctrl-C)
	$(PY) -m local.run --replay $(REPLAY) $(if $(SUMMARY),--summary $(SUMMARY)) $(if $(KEEP),--keep)

up: $(VENV)/.stamp node_modules/.stamp ## keep the local stack running on fixed loopback ports (README); the CLI finds it
	$(PY) -m local.up start

down: ## stop the local stack `make up` started
	$(PY) -m local.up stop

test: setup lint typecheck sam-validate sam-build chart ## the whole suite: lint, types, SAM, unit, integration, e2e
	$(PY) -m pytest

unit: $(VENV)/.stamp ## unit tests only (fast)
	$(PY) -m pytest tests/unit

lint: $(VENV)/.stamp
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.stamp
	$(VENV)/bin/mypy layers/podwatch/podwatch relay/podwatch_relay cli/podwatch_cli functions local

sam-validate: $(SAM_VENV)/.stamp
	$(SAM_VENV)/bin/sam validate --lint

sam-build: $(SAM_VENV)/.stamp
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(SAM_VENV)/bin/sam build --build-dir .aws-sam/build

bench: $(VENV)/.stamp node_modules/.stamp ## benchmarks (relay, processor, delivery); figures merged into bench/results.json
	$(PY) -m bench

chart-tools: ## helm, kubernetes-validate, hadolint into .tools/ (pinned; offline after the first run)
	PYTHON=$(PYTHON_BIN) bash scripts/install-helm-tools.sh

chart: chart-tools ## helm lint + template (defaults, relay/chart/ci/*.yaml) + kubernetes-validate --strict
	bash scripts/check-chart.sh

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache .local-run .cache
