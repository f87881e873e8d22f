#!/usr/bin/env bash
# `make test`: lint, then every test layer in one pytest run (one embedded broker for the
# session), then a per-layer summary printed by the chorus_testing plugin.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
started=$(date +%s)

echo "[chorus] lint: ruff check + format check"
$PY -m ruff check . || { echo "[chorus] lint failed"; exit 1; }
$PY -m ruff format --check . || { echo "[chorus] format check failed (run: make fmt)"; exit 1; }

echo "[chorus] tests: unit, component, integration, deploy, e2e, docker"
$PY -m pytest -p no:cacheprovider "$@"
rc=$?
echo "[chorus] make test finished in $(( $(date +%s) - started ))s with exit code $rc"
exit $rc
