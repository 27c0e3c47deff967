# GhostCache: `make run` serves the app, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench bench-quick assets clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The app alone for `make run`; the test and lint tools on top for the rest.
$(VENV)/.app: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(VENV)/.app $@

run: $(VENV)/.app
	$(BIN)/ghostcache serve

test: $(VENV)/.dev
	$(BIN)/pytest -q

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy ghostcache

# Benchmarks on real servers; results in bench/results/latest.{json,md}. bench-quick: under 3 minutes.
bench: $(VENV)/.dev
	$(BIN)/python -m bench

bench-quick: $(VENV)/.dev
	$(BIN)/python -m bench --quick

# Rebuilds ghostcache/static/age.bundle.js (committed, so `make run` needs no Node) from web-src/.
assets:
	cd web-src && npm ci && npx esbuild decrypt-entry.js --bundle --format=iife --minify \
		--target=es2020 --outfile=../ghostcache/static/age.bundle.js \
		--banner:js='/* age-encryption 0.3.1 (typage) with web-src/decrypt-entry.js, bundled by esbuild 0.28.2; rebuild: make assets */'

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
