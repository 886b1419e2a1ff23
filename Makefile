# ReBase Studio. `make run` sets up and opens the app; `make test` sets up and runs the tests.
PY := .venv/bin/python

.PHONY: help run setup setup-dev test test-fast lint fix bench clean-venv

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

run: setup  ## set up (first run ~10-15 min) and open the app on http://localhost:8501
	$(PY) -m streamlit run app.py

setup:  ## the app's environment: venv, local models, bundled corpus and held-out sets
	bash scripts/setup.sh app

setup-dev:  ## the test environment: venv with dev tools, small real assets for the tests
	bash scripts/setup.sh dev

test: setup-dev  ## set up, lint and run every test (what CI runs)
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest -q

test-fast: ## tests without the slow and e2e markers (no setup)
	$(PY) -m pytest -q -m "not slow and not e2e and not network"

lint:  ## ruff and mypy
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

fix:  ## apply ruff's fixes and formatting
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

bench:  ## run the benchmarks (prints figures and ratios)
	$(PY) bench/run_all.py
