# Every target creates .venv on first use. PYTHON picks the interpreter:
#   make test PYTHON=python3.12   (Django 6.x needs Python 3.12+)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
MANAGE := $(BIN)/python testproject/manage.py

.DEFAULT_GOAL := help
.PHONY: help venv demo run docs test test-quick test-sqlite test-postgres test-postgres-db test-independent \
	test-mysql test-brokers test-redis test-amqp test-oldest test-newest test-cells lint format screenshots clean bench bench-processes bench-purge faults hostile FORCE

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

# The interpreter a venv was made with: another one (PYTHON, or pyenv's
# choice behind it) makes it again.
PYTHON_USED := $(VENV)/python-used
PYTHON_ID = $(shell $(PYTHON) -c 'import sys; print(sys.version.split()[0], sys.base_prefix)')

%/python-used: FORCE
	@mkdir -p $*
	@echo '$(PYTHON_ID)' | cmp -s - $@ || echo '$(PYTHON_ID)' > $@

$(BIN)/activate: pyproject.toml $(PYTHON_USED)
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[all,test]"
	echo '$(PYTHON_ID)' > $(PYTHON_USED)
	touch $(BIN)/activate

FORCE:

venv: $(BIN)/activate  ## Create .venv with the package and test tools

demo: venv  ## Run the demo: a worker on SQLite/django:// plus a few enqueued tasks
	bash testproject/demo.sh

run: venv  ## Serve the demo's admin (admin/admin) with a worker beside it
	bash testproject/demo.sh --serve

# tests/typing: what mypy and pyright must accept and refuse of task handles.
lint: venv  ## ruff, ruff format --check, mypy, the typing tests (mypy, pyright), import contracts, migrations up to date, docs build
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	PYTHONPATH=testproject $(BIN)/mypy django_qtasks tests/typing
	$(BIN)/pyright --pythonpath $(BIN)/python
	$(BIN)/lint-imports
	$(MANAGE) makemigrations --check --dry-run django_qtasks
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir $(or $(TMPDIR),/tmp)/qtasks-site

docs: venv  ## Serve the documentation at http://127.0.0.1:8001/
	$(BIN)/mkdocs serve --dev-addr 127.0.0.1:8001

format: venv  ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Which tests run where is said by pytest markers (pyproject.toml): broker
# outages, the docs' examples, the admin in a browser, the API's schema and the
# QTasks conformance suite are `db_independent` and run once, with PostgreSQL,
# to keep `make test` within 15 minutes.
test-quick: venv  ## The tests that start no worker process (`-m "not e2e"`), on SQLite
	QTASKS_DB=sqlite $(BIN)/pytest -m "not e2e"

test-sqlite: venv  ## The test suite on SQLite (less the database-independent tests)
	QTASKS_DB=sqlite $(BIN)/coverage run -m pytest -m "not db_independent"

test-postgres: test-postgres-db test-independent  ## The test suite on PostgreSQL (127.0.0.1:5432)

# The two halves of test-postgres, apart so that `make test` can run them side by side.
test-postgres-db: venv
	QTASKS_DB=postgres $(BIN)/coverage run -m pytest -m "not db_independent"

test-independent: venv  ## The database-independent tests alone (on PostgreSQL)
	QTASKS_DB=postgres $(BIN)/coverage run -m pytest -m db_independent

# mysqlclient builds against libmariadb-dev (or libmysqlclient-dev): only this
# suite needs it, so that the demo does not.
$(VENV)/mysqlclient-installed: $(BIN)/activate
	$(BIN)/pip install --quiet "mysqlclient>=2.2.1"
	touch $@

test-mysql: $(VENV)/mysqlclient-installed  ## The test suite on MySQL/MariaDB (127.0.0.1:3306, root; less the database-independent tests)
	QTASKS_DB=mysql $(BIN)/coverage run -m pytest -m "not db_independent"

# The worker suites run again on each message broker: on Redis those marked
# `broker`; on RabbitMQ those marked `amqp`, where the broker's part differs
# (acks, wake-ups, hand-backs, prefetch); the rest of the worker is the same
# code on both. Two targets, so that a failure on one broker does not keep
# the other from running.
test-brokers: test-redis test-amqp  ## The worker suites again on Redis and RabbitMQ (127.0.0.1:6379, :5672)

test-redis: venv
	QTASKS_BROKER_URL=redis://127.0.0.1:6379/0 $(BIN)/coverage run -m pytest -m broker

test-amqp: venv
	QTASKS_BROKER_URL=amqp://guest:guest@127.0.0.1:5672// $(BIN)/coverage run -m pytest -m amqp

# The suites mostly wait on worker processes, so three run side by side (each
# has its own database and queue names), longest first; make prints each
# one's output when it ends. Every suite runs even when another fails
# (--keep-going), and the coverage report comes anyway; the exit status is
# non-zero if any failed.
test: venv  ## Lint and all tests on SQLite, PostgreSQL and MySQL/MariaDB, the worker suites on Redis and RabbitMQ, with coverage
	rm -f .coverage .coverage.*
	@echo "Running the suites three at a time; each one's output shows when it ends."
	@status=0; \
	$(MAKE) --jobs=3 --keep-going --output-sync=target test-independent test-postgres-db \
		test-sqlite test-mysql test-redis test-amqp lint || status=1; \
	$(BIN)/coverage combine -q || status=1; \
	$(BIN)/coverage report --fail-under=85 || status=1; \
	if [ $$status -ne 0 ]; then echo "make test: some of the above FAILED (see each one's output)"; fi; \
	exit $$status

# The two ends of the support the package declares (pyproject.toml, tox.ini),
# on SQLite, each in a venv of its own: Python 3.10 with Django 4.2, and
# Python 3.13 with Django 6.1. The tests that start no worker, and the
# worker's own (marked `cells`). CI runs them after `make test`; here, for example:
#   make test-cells PYTHON_OLDEST="env PYENV_VERSION=3.10.13 python3"
PYTHON_OLDEST ?= python3.10
PYTHON_NEWEST ?= python3.13

.venv-oldest/bin/activate: pyproject.toml .venv-oldest/python-used
	$(PYTHON_OLDEST) -m venv --clear .venv-oldest
	.venv-oldest/bin/pip install --quiet --upgrade pip
	.venv-oldest/bin/pip install --quiet -e ".[all,test]" "Django>=4.2,<5.0"
	touch $@

.venv-newest/bin/activate: pyproject.toml .venv-newest/python-used
	$(PYTHON_NEWEST) -m venv --clear .venv-newest
	.venv-newest/bin/pip install --quiet --upgrade pip
	.venv-newest/bin/pip install --quiet -e ".[all,test]" "Django>=6.1,<6.2"
	touch $@

.venv-oldest/python-used: PYTHON = $(PYTHON_OLDEST)
.venv-newest/python-used: PYTHON = $(PYTHON_NEWEST)

test-oldest: .venv-oldest/bin/activate  ## The quick tests and the worker's own on SQLite, Python 3.10 + Django 4.2
	QTASKS_DB=sqlite .venv-oldest/bin/pytest -p no:cacheprovider -m "not e2e"
	QTASKS_DB=sqlite .venv-oldest/bin/pytest -p no:cacheprovider -m cells

test-newest: .venv-newest/bin/activate  ## The same on Python 3.13 + Django 6.1
	QTASKS_DB=sqlite .venv-newest/bin/pytest -p no:cacheprovider -m "not e2e"
	QTASKS_DB=sqlite .venv-newest/bin/pytest -p no:cacheprovider -m cells

test-cells: test-oldest test-newest  ## Both ends of the declared support (Python 3.10/Django 4.2, 3.13/6.1)

# The benchmark's peers (Celery, RQ, Huey, django-tasks-db) live in a venv of
# their own, never in .venv. BENCH_ARGS passes options to run.py, e.g.
#   make bench BENCH_ARGS="--only qtasks-db,celery-db --tasks 1000"
BENCH_VENV ?= .venv-bench

$(BENCH_VENV)/bin/activate: pyproject.toml benchmarks/requirements.txt $(BENCH_VENV)/python-used
	$(PYTHON) -m venv --clear $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/pip install --quiet -e ".[all]" -r benchmarks/requirements.txt
	echo '$(PYTHON_ID)' > $(BENCH_VENV)/python-used
	touch $(BENCH_VENV)/bin/activate

bench: $(BENCH_VENV)/bin/activate  ## Benchmark against Celery, RQ, Huey and django-tasks-db (PostgreSQL + Redis, ~9 min)
	$(BENCH_VENV)/bin/python benchmarks/run.py $(BENCH_ARGS)

# Worker processes (--processes) against Celery's prefork pool and Huey's
# process workers: CPU-bound work, memory, drain, crash recovery, SIGHUP.
bench-processes: $(BENCH_VENV)/bin/activate  ## Benchmark --processes against Celery prefork and Huey (PostgreSQL + Redis, ~3 min)
	$(BENCH_VENV)/bin/python benchmarks/processes.py $(BENCH_ARGS)

# Retention beside running workers: 1,000,000 ended rows deleted by
# qtasks_purge while two workers drain a stream of tasks (PostgreSQL only; it
# needs no peer, so it runs in .venv). A quicker try:
#   make bench-purge BENCH_ARGS="--rows 50000"
bench-purge: venv  ## qtasks_purge on 1,000,000 ended rows while workers drain tasks (PostgreSQL)
	$(BIN)/python benchmarks/purge.py $(BENCH_ARGS)

# Fault scenarios on django:// and redis:// (PostgreSQL + Redis, about 5
# minutes; not part of `make test`). FAULTS_ARGS passes options, e.g.
#   make faults FAULTS_ARGS="--scenarios lock,shutdown --brokers django"
faults: venv  ## Fault scenarios: every task ends exactly once, none stuck (PostgreSQL + Redis)
	$(BIN)/python benchmarks/faults.py $(FAULTS_ARGS)

# Hostile inputs to the REST API, the admin and a real worker (PostgreSQL, about
# 3 minutes): every refusal a 4xx that writes nothing, no 5xx.
hostile: venv  ## Hostile inputs: no 5xx, nothing written on refusal (PostgreSQL)
	$(BIN)/python benchmarks/hostile.py

screenshots: venv  ## Refresh the admin screenshots in docs/img (needs chromium)
	QTASKS_SCREENSHOTS=docs/img $(BIN)/python -m pytest tests/test_admin_browser.py -k "filter or schedule"

clean:  ## Remove the venv, the demo database and caches
	rm -rf $(VENV) .venv-oldest .venv-newest testproject/db.sqlite3 .coverage .coverage.* .pytest_cache .mypy_cache
