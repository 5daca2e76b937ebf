# DeltaSense developer commands. `make demo` runs the platform with a simulated
# city; `make test` runs every test. Both set up what they need first.
VENV ?= .venv
PY := $(VENV)/bin/python
DS := $(VENV)/bin/deltasense
PYTEST_ARGS ?=
DEMO_DEVICES ?= 40
DEMO_RATE ?= 0.2

.PHONY: firmware help bootstrap chaos test test-unit test-integration lint format typecheck demo up down status openapi bench clean

help:
	@echo "make demo   - run the platform with a simulated city (Ctrl-C stops everything)"
	@echo "make test   - lint, type-check and run every test (unit + integration)"
	@echo "make up / make down - the stack in the background for development"
	@echo "make chaos  - kill each service under load and count what is lost (~3 min)"
	@echo "make firmware - cross-compile the node firmware bundles (build/firmware/<board>/)"
	@echo "make test-unit, test-integration, lint, format, typecheck, openapi, bench, clean"

bootstrap:
	@scripts/bootstrap.sh

test: bootstrap lint typecheck
	$(PY) -m pytest --durations=30 $(PYTEST_ARGS)

test-unit: bootstrap
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-integration: bootstrap
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

lint: bootstrap
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: bootstrap
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

typecheck: bootstrap
	$(VENV)/bin/mypy

demo: bootstrap
	$(DS) up --simulate $(DEMO_DEVICES) --rate $(DEMO_RATE)

up: bootstrap
	$(DS) up --detach --simulate $(DEMO_DEVICES) --rate $(DEMO_RATE)

down: bootstrap
	$(DS) down

status: bootstrap
	$(DS) status

openapi: bootstrap
	$(DS) openapi --out docs/openapi.json

chaos: bootstrap
	$(DS) chaos

bench: bootstrap
	$(PY) -m bench

firmware: bootstrap
	$(PY) firmware/build.py

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache .hypothesis
