# Safeguard: the two commands are `make run` (a demo server on this machine) and `make test`.
# GNU make on Debian. Everything Python goes into .venv, made with the machine's python3.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 2
# Arguments for pytest instead of the whole suite, e.g. `make test PYTEST_ARGS="tests/core -x"`.
PYTEST_ARGS ?=

AGENT_PYPROJECT := $(wildcard agent/pyproject.toml)
# The project's own CSS/JS; collectstatic reruns when one of them (or an installed package) changes.
STATIC_SOURCES := $(shell find static safeguard -path '*/static/*' -type f 2>/dev/null)
STATIC_STAMP := var/static/.collected

.PHONY: help run test lint format bench clean distclean

help:
	@echo "make run       install, migrate, load the demo school and serve it on http://$(HOST):$(PORT)"
	@echo "make test      install, start PostgreSQL and Redis if needed, run the whole test suite"
	@echo "make lint      ruff check and ruff format --check"
	@echo "make format    ruff format and ruff check --fix"
	@echo "make bench     run the benchmarks under bench/"
	@echo "make clean     remove caches and collected static files (keeps .venv and the demo data)"
	@echo "make distclean also remove .venv and var/ (the demo database, media and secret key)"

$(PY):
	$(PYTHON) -m venv $(VENV)

# Stamps: reinstall only when a requirements file (or the agent's pyproject) changes.
$(VENV)/.installed-runtime: requirements.txt $(AGENT_PYPROJECT) | $(PY)
	scripts/install-python-deps.sh $(VENV) runtime
	@touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(AGENT_PYPROJECT) | $(PY)
	scripts/install-python-deps.sh $(VENV) dev
	@touch $@ $(VENV)/.installed-runtime

# The embedded mode: SQLite under var/, media under var/media, tasks in-process, no service needed
# (unless DATABASE_URL/REDIS_URL are set in the environment or in .env). DEBUG stays off, so static
# files are served by WhiteNoise from var/static after collectstatic, as in production.
run: $(VENV)/.installed-runtime $(STATIC_STAMP)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	@echo
	@echo "Safeguard is starting on http://$(HOST):$(PORT)/"
	@echo "  Console:       http://$(HOST):$(PORT)/console/   (log in at /accounts/login/)"
	@echo "  Django admin:  http://$(HOST):$(PORT)/admin/"
	@echo "  Agent API:     http://$(HOST):$(PORT)/api/v1/agent/   docs: http://$(HOST):$(PORT)/api/docs/"
	@echo "  Logins (password safeguard-demo): admin (superuser), lead (safeguarding lead), teacher (Year 9)"
	@echo "  Stop with Ctrl+C."
	@echo
	exec $(VENV)/bin/gunicorn safeguard.wsgi --bind $(HOST):$(PORT) --workers $(WORKERS) --threads 4 --reuse-port \
		--no-control-socket --access-logfile - --error-logfile - \
		--logger-class safeguard.core.accesslog.AccessLogWithoutConfide

# collectstatic compresses every file (about half a minute), so it runs only when something changed.
$(STATIC_STAMP): $(STATIC_SOURCES) $(VENV)/.installed-runtime
	$(PY) manage.py collectstatic --noinput --verbosity 0
	@mkdir -p $(@D) && touch $@

# CI and developers: the whole suite (tests/ and agent/tests/, the testpaths in pyproject.toml) runs
# on PostgreSQL and real Redis. Both URLs can be overridden from the environment (each developer
# uses their own database name).
test: $(VENV)/.installed-dev
	scripts/install-system-packages.sh
	export DATABASE_URL="$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/safeguard}"; \
	export REDIS_URL="$${REDIS_URL:-redis://127.0.0.1:6379/0}"; \
	scripts/ensure-services.sh && \
	echo "Testing with DATABASE_URL=$$DATABASE_URL REDIS_URL=$$REDIS_URL" && \
	$(PY) -m pytest --durations=15 $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.installed-dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(VENV)/.installed-dev
	$(PY) bench/run_all.py

clean:
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
	rm -rf .pytest_cache .ruff_cache test-results var/static

distclean: clean
	rm -rf $(VENV) var
