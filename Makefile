# Two commands do all the set-up on a fresh machine with Python 3.11:
#   make demo   — create .venv, install (with Chromium + axe-core for the accessibility scan), run the PSO master flow over the sample world (SQLite, ephemeral Prefect)
#   make test   — create .venv, install, make sure PostgreSQL answers and Prometheus, Chromium and axe-core are
#                 installed, lint, build the docs strictly, run the whole test suite on SQLite, then the
#                 integration suite on PostgreSQL
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install demo test lint docs bench clean

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
	$(BIN)/mkdocs build --strict --quiet
	$(BIN)/pytest -q -p no:cacheprovider --durations=12
	# The integration suite again with the Prefect server and the store on PostgreSQL (fresh databases).
	FRAMEWORK2_TEST_BACKEND=postgres $(BIN)/pytest -q -p no:cacheprovider --durations=5

docs: $(STAMP)
	$(BIN)/mkdocs build --strict

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .framework2 .pytest_cache
