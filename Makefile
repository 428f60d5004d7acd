# Two commands do all set-up on a fresh machine:
#   make demo   - creates .venv, installs gmv_sql, runs `gmv demo` on the embedded database
#   make test   - creates .venv, installs gmv_sql with test tools, runs the test suite (make test-quick: without
#                 the Superset test, which installs Superset in its own virtualenv)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo demo-quick test test-quick lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch==2.14.1 / torchvision==0.29.1 are pinned in pyproject.toml (they come from local disk).
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

$(VENV)/.installed-bench: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/gmv demo

demo-quick: $(VENV)/.installed
	$(BIN)/gmv demo --quick

test: $(VENV)/.installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Everything but the BI-tool test (Apache Superset in its own virtualenv: minutes the first time).
test-quick: $(VENV)/.installed
	$(BIN)/python -m pytest -m "not bi" $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check gmv_sql tests benchmarks migrations
	$(BIN)/ruff format --check gmv_sql tests benchmarks migrations

bench: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/ingest_embed.py
	$(BIN)/python benchmarks/match.py

clean:
	rm -rf $(VENV) build dist .pytest_cache
