# The two entry points (see README): `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck unit deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

deps: $(STAMP)
	@bash .ci/install-system-deps   # mosquitto, etcd-server, etcd-client: only what is missing

run: $(STAMP)
	$(BIN)/lockstore serve --host 127.0.0.1 --port 8441 --data-dir ./data

lint: $(STAMP)
	$(BIN)/ruff check actors transports wal bench tests

typecheck: $(STAMP)
	$(BIN)/mypy

test: deps lint typecheck
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
