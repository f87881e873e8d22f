# Chorus — developer commands. Everything a fresh clone needs is installed from here.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION ?= 0.13.9
TOOLS      := .chorus/tools
UV         := $(shell command -v uv 2>/dev/null || echo $(TOOLS)/bin/uv)
PY         := .venv/bin/python
DETACH     ?=
PYTEST_ARGS ?=

export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON_PREFERENCE := only-system

.PHONY: help install up up-detached down status test test-docker lint fmt schemas schemas-check clean

help: ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(TOOLS)/bin/uv:
	@echo "[chorus] installing uv $(UV_VERSION) into $(TOOLS)"
	@python3 -m venv $(TOOLS)
	@$(TOOLS)/bin/pip install --quiet "uv==$(UV_VERSION)"

.venv/.synced: pyproject.toml uv.lock $(wildcard libs/*/pyproject.toml services/*/pyproject.toml) | $(UV)
	@echo "[chorus] syncing the environment (uv sync --frozen)"
	@$(UV) sync --frozen --all-packages
	@touch $@

install: .venv/.synced ## create .venv from uv.lock

up: install ## start the embedded stack in the foreground (DETACH=1 to return when ready)
	@bash scripts/ensure-services.sh
	@$(PY) -m chorus_runtime.embedded.stack up $(if $(DETACH),--detach,)

up-detached: ## start the embedded stack and return once ready
	@$(MAKE) --no-print-directory up DETACH=1

down: ## stop a stack started with DETACH=1
	@if [ -x $(PY) ]; then $(PY) -m chorus_runtime.embedded.stack down; fi

status: install ## print the running stack's endpoints
	@$(PY) -m chorus_runtime.embedded.stack status

lint: install ## ruff lint + format check
	@$(PY) -m ruff check .
	@$(PY) -m ruff format --check .

fmt: install ## ruff autofix + format
	@$(PY) -m ruff check --fix .
	@$(PY) -m ruff format .

schemas: install ## export JSON Schemas and AsyncAPI from the event models
	@$(PY) -m chorus_contracts.cli export

schemas-check: install ## fail when exported schemas drift or break compatibility
	@$(PY) -m chorus_contracts.cli export --check
	@$(PY) -m chorus_contracts.cli compat

test: install ## lint + every test layer (unit, component, integration, deploy, e2e, docker)
	@bash scripts/ensure-services.sh
	@bash scripts/test.sh $(PYTEST_ARGS)

test-docker: install ## the journeys against docker compose + the testcontainers tests (needs Docker)
	@CHORUS_E2E_TARGET=compose $(PY) -m pytest -p no:cacheprovider tests-e2e tests/docker $(PYTEST_ARGS)

clean: down ## remove the environment and local state
	rm -rf .venv .chorus .pytest_cache .ruff_cache
