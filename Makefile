# The two entry points (see README): `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Two install stamps: the service needs only its runtime dependencies; the checks need the test and
# bench extras too (pytest, mypy, ruff, schemathesis, hypothesis, matplotlib, ...). The full install
# covers the runtime one, so it touches both.
RUN_STAMP := $(VENV)/.installed-run
STAMP     := $(VENV)/.installed

.PHONY: setup run test lint typecheck deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP) $(RUN_STAMP)

# .venv with lockstore and its runtime dependencies only (then .venv/bin/lockstore exists).
setup: $(RUN_STAMP)

deps: $(STAMP)
	@bash .ci/install-system-deps   # mosquitto, etcd-server, etcd-client: only what is missing

run: $(RUN_STAMP)
	$(BIN)/lockstore serve --host 127.0.0.1 --port 8441 --data-dir ./data

lint: $(STAMP)
	$(BIN)/ruff check actors transports wal bench tests

typecheck: $(STAMP)
	$(BIN)/mypy

test: deps lint typecheck
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
