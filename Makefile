# Switchboard: `make up` starts the whole mesh, `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BUF := .tools/node_modules/.bin/buf
BUF_VERSION := 1.75.0
PYTEST_WORKERS ?= 4

.PHONY: help venv tools gen gen-check lint buf-lint test test-unit test-integration up down status chaos bench clean cluster-up cluster-down

help:
	@echo "make up | down | status | test | gen | gen-check | lint | chaos | bench"

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[local,dev]"
	touch $@

venv: $(VENV)/.installed

$(BUF):
	npm install --silent --no-save --no-audit --no-fund --prefix .tools @bufbuild/buf@$(BUF_VERSION)

/usr/bin/chromium:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

tools: venv $(BUF) /usr/bin/chromium

gen: venv
	$(PY) scripts/gen.py
	$(PY) k8s/sync-descriptors

gen-check: venv
	$(PY) scripts/gen.py --check
	$(PY) k8s/sync-descriptors --check

buf-lint: $(BUF)
	cd proto && ../$(BUF) lint

lint: venv buf-lint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: tools gen-check lint
	$(PY) scripts/ensure_rabbitmq.py --purge-test-queues
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist loadfile -q -m "not slow and not chaos" tests
	$(VENV)/bin/pytest -q -m "slow and not chaos" tests

test-unit: venv
	$(VENV)/bin/pytest -q tests/unit

up: venv
	$(VENV)/bin/mesh up

down: venv
	$(VENV)/bin/mesh down

status: venv
	$(VENV)/bin/mesh status

chaos: tools
	$(PY) scripts/ensure_rabbitmq.py --purge-test-queues
	$(VENV)/bin/pytest -q -n 3 --dist loadfile -m "chaos and not slow" tests/chaos tests/integration
	$(VENV)/bin/pytest -q -m "chaos and slow" tests/chaos

/usr/bin/wrk:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null

bench: venv /usr/bin/wrk
	$(PY) scripts/ensure_rabbitmq.py
	for b in bench/*.py; do $(PY) $$b || exit 1; done

# A three-node RabbitMQ cluster beside the default node (5672 is never touched); prints
# the RABBITMQ_URL list that reaches it.
cluster-up: venv
	$(PY) -m tests.support.rabbit_cluster up --dir /tmp/switchboard-rabbit-cluster

cluster-down: venv
	$(PY) -m tests.support.rabbit_cluster down --dir /tmp/switchboard-rabbit-cluster

clean:
	rm -rf .data .pytest_cache .mypy_cache .ruff_cache
