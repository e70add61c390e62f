# Threadline: `make run` starts the whole CRM, `make test` runs every test. Both set themselves up.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3.13 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint format bench clean-var

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.installed $@

## Start web, Celery worker and Celery beat with demo data. Ctrl-C stops all of them.
run: $(VENV)/.installed
	@$(BIN)/python -m crm.supervisor

## Run the whole suite on real PostgreSQL and Redis (embedded unless DATABASE_URL/REDIS_URL are set).
test: $(VENV)/.installed-dev
	@$(BIN)/python -m crm.embedded exec -- $(BIN)/pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## python manage.py bench NAME: one JSON line of figures beside a same-run baseline.
bench: $(VENV)/.installed-dev
	@$(BIN)/python -m crm.embedded exec -- $(BIN)/python manage.py bench $(NAME)

## Stop the embedded PostgreSQL and Redis (they are normally stopped by Ctrl-C on `make run`).
clean-var:
	$(BIN)/python -m crm.embedded stop
