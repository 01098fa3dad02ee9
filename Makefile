# eksops: `make run` starts the local stack, `make test` runs every check CI runs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test lint typecheck contracts pytest bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "eksops needs Python 3.11 or newer (PYTHON=$(PYTHON))")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	@touch $@

install: $(STAMP)  ## Create the virtualenv and install eksops with its dev tools

run: install  ## Start Redis (embedded Valkey) + kubesim + worker + Flower + gateway
	$(BIN)/python -m devstack

test: lint typecheck contracts pytest  ## Everything CI checks

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

contracts: install
	$(BIN)/lint-imports

pytest: install
	$(BIN)/pytest

bench: install  ## Benchmarks; QUICK=1 for a run under a minute
	$(BIN)/python -m bench $(if $(QUICK),--quick,)

clean:
	rm -rf $(VENV) .run .mypy_cache .ruff_cache .pytest_cache *.egg-info
