# Two commands matter: `make run` (the whole pipeline) and `make test` (the suite).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export AMHS_DATA_DIR ?= $(CURDIR)/data
PYTEST_ARGS ?=

.PHONY: install run test ui mlflow-ui serve up down bench clean

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

install: $(BIN)/.installed

$(DAGSTER_HOME)/dagster.yaml:
	mkdir -p $(DAGSTER_HOME)
	printf 'telemetry:\n  enabled: false\nrun_queue:\n  max_concurrent_runs: 1\nrun_monitoring:\n  enabled: true\n  start_timeout_seconds: 180\n' > $@

## run: simulate data if data/raw is empty, then materialize the whole asset graph
run: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/amhs run

## test: the whole test suite (pytest's "no tests ran" counts as a failure)
test: install
	@set +e; $(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

## ui: the Dagster UI and daemon (sensors, schedules) on http://127.0.0.1:3000
ui: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -h 127.0.0.1 -p 3000

## mlflow-ui: the MLflow UI over the embedded store on http://127.0.0.1:5000
mlflow-ui: install
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(AMHS_DATA_DIR)/mlflow/mlflow.db --host 127.0.0.1 --port 5000

## serve: the REST API on http://127.0.0.1:8000
serve: install
	$(BIN)/amhs serve

## up: the production profile on this machine (PostgreSQL, Redis, MLflow server, Dagster
## webserver and daemon, 2 Celery workers, the API); logs and PIDs under .amhs_stack/
up: install
	@command -v redis-server >/dev/null && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  { echo "installing postgresql and redis-server (Debian packages)"; \
	    apt-get install -y -qq postgresql redis-server >/dev/null 2>&1 || \
	    { apt-get update -qq && apt-get install -y -qq postgresql redis-server >/dev/null; }; }
	$(BIN)/amhs up

## down: stop everything `make up` started
down:
	$(BIN)/amhs down

bench: install
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
