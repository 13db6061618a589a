# Two commands do all the set-up on a fresh machine with Python 3.11:
#   make demo   — create .venv, install (with Chromium + axe-core for the accessibility scan), run the PSO master flow over the sample world (SQLite, ephemeral Prefect)
#   make test   — create .venv, install, make sure PostgreSQL answers and Prometheus, Chromium and axe-core are
#                 installed, lint, run the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install demo test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

demo: $(STAMP)
	bash scripts/ensure-chromium.sh
	$(BIN)/framework2 demo

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP)
	bash scripts/ensure-postgres.sh
	bash scripts/ensure-prometheus.sh
	bash scripts/ensure-chromium.sh
	$(BIN)/ruff check .
	$(BIN)/pytest -q -p no:cacheprovider --durations=12

bench: $(STAMP)
	$(BIN)/python bench/pricing_bench.py
	$(BIN)/python bench/rollback_bench.py
	$(BIN)/python bench/forecast_bench.py
	$(BIN)/python bench/portfolio_bench.py
	$(BIN)/python bench/experiments_bench.py

clean:
	rm -rf $(VENV) .framework2 .pytest_cache
