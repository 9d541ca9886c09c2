# Administrative-reform monitoring warehouse — the two commands are `make run` and `make test`.
# make test runs on three pytest workers: the tests wait on servers (Airflow, Superset, PostgreSQL) part of
# the time, so three keep two cores busier than two (fresh clones: 634 s on three, 699 s on two workers).
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON_BOOT ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.8
STAMP := $(VENV)/.installed
TEST_WORKERS ?= 3

.PHONY: help venv run test lint warehouse-up warehouse-down simulator simulator-stop status serve clean lock bench-sim bench-ingest bench-dbt bench-dq bench-nightly bench-backfill bench-timestamps bench-celery airflow airflow-celery superset

help: ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | column -t -s $$'\t'

$(STAMP): requirements.txt
	@test -x $(PY) || { echo "==> creating the virtual environment $(VENV) ($$($(PYTHON_BOOT) --version))"; $(PYTHON_BOOT) -m venv $(VENV); }
	@echo "==> installing uv $(UV_VERSION) (the installer) from PyPI"
	@$(PY) -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	@echo "==> installing the $$(grep -cE '^[a-zA-Z0-9]' requirements.txt) pinned packages of requirements.txt (Airflow, dbt, Great Expectations, ...): about two minutes the first time"
	@# Bytecode compiled at install: with PYTHONDONTWRITEBYTECODE set (as on CI machines) nothing else writes it,
	@# and every process would recompile Airflow, dbt and GX from source (some 15 s each).
	@$(UV) pip install -q --compile-bytecode --python $(PY) -r requirements.txt
	@touch $(STAMP)
	@echo "==> environment ready"

venv: $(STAMP) ## create .venv and install the pinned requirements (uv)

run: venv ## start the warehouse and the simulator (unless external ones are configured), run the nightly pipeline
	@$(PY) -m ops.run

test: venv ## the whole test suite: real PostgreSQL, simulator, dbt, GX and Airflow, started by the tests
	@$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=25 $(PYTEST_ARGS)

lint: venv ## ruff
	@$(VENV)/bin/ruff check .

warehouse-up: venv ## start (and bootstrap) the private PostgreSQL warehouse, or bootstrap WAREHOUSE_URL
	@$(PY) -m warehouse up

warehouse-down: venv ## stop the private warehouse
	@$(PY) -m warehouse down

simulator: venv ## start the procedure-system simulator in the background (SIM_* variables pick the scenario)
	@$(PY) -m simulator start

simulator-stop: venv ## stop the simulator
	@$(PY) -m simulator stop

status: venv ## the last run's state and when it ran; where the warehouse and the simulator are
	@$(PY) -m pipeline status || true
	@$(PY) -m warehouse status || true
	@$(PY) -m simulator status || true

serve: venv ## everything published behind one read-only URL, http://127.0.0.1:8090/ (SERVE_PORT): reports, publications, digests, Data Docs, dbt docs
	@$(PY) -m ops.serve

bench-sim: venv ## simulator serving speed (dossiers/s of JSON)
	@$(PY) -m simulator bench

lock: ## recompile requirements.txt from requirements.in
	@$(UV) pip compile -q requirements.in -o requirements.txt --python-version 3.11

clean: ## stop everything and remove local state (warehouse data, simulator state, reports)
	@if [ -x $(PY) ]; then $(PY) -m simulator stop || true; $(PY) -m warehouse down || true; fi
	@rm -rf .local reports test-artifacts .pytest_cache .ruff_cache

bench-ingest: venv ## ingestion speed: API → raw vs psql \copy (and pandas to_sql), 100k, 1M and 3M dossiers
	@$(PY) benchmarks/ingest.py

airflow: venv ## run Airflow so cchc_nightly runs every night at 01:00: scheduler, UI on 127.0.0.1:8080, supervised
	@$(PY) -m ops.airflow standalone

airflow-celery: venv ## the same on the CeleryExecutor: a private Redis broker (redis-server) and CELERY_WORKERS (2) Celery workers
	@$(PY) -m ops.airflow celery

superset: venv ## Superset on 127.0.0.1:8088 (SUPERSET_PORT) with the dashboards of bi/bundle (morning, data quality, service index, today's units); its own environment, built once
	@$(PY) -m bi serve

bench-dbt: venv ## dbt build times: full and incremental nightly, default scenario and 10x
	@$(PY) benchmarks/dbt_build.py

bench-dq: venv ## data-quality validation time, default scenario and 10x, against the rules in plain Python
	@$(PY) benchmarks/data_quality.py

bench-nightly: venv ## the same day of changes on a 1M and a 3M history, the whole night through the DAG
	@$(PY) benchmarks/nightly.py

bench-backfill: venv ## a rebuild: the 10x scenario's whole history landed, built and validated, per stage
	@$(PY) benchmarks/backfill.py

bench-timestamps: venv ## one API timestamp decoded the decoders' way, against the two former decoders, same table
	@$(PY) benchmarks/timestamps.py

bench-celery: venv ## one night (partitioned pull, a task per dbt node) on make airflow-celery (2 workers) vs make airflow: wall times, tasks per worker, equal marts
	@$(PY) benchmarks/celery.py
