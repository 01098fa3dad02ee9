# eksops: `make run` starts the local stack, `make test` runs every check CI runs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# uv syncs the virtualenv to uv.lock exactly (hashes checked): the versions CI tested.
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: install lock run test lint typecheck contracts pytest bench clean

$(STAMP): pyproject.toml uv.lock requirements/uv.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "eksops needs Python 3.11 or newer (PYTHON=$(PYTHON))")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet --require-hashes -r requirements/uv.txt
	$(BIN)/uv sync --quiet --frozen --extra dev --python $(BIN)/python
	@touch $@

install: $(STAMP)  ## Create the virtualenv from uv.lock, with the dev tools

lock: install  ## Re-resolve uv.lock after changing pyproject.toml's dependencies
	$(BIN)/uv lock

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

# The suites mostly wait (workers, timeouts, restarts), so three processes take a third
# of the time on two cores; a file's tests stay together in one process.
TEST_WORKERS ?= 3

pytest: install
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

bench: install  ## Benchmarks; QUICK=1 for a run under a minute
	$(BIN)/python -m bench $(if $(QUICK),--quick,)

clean:
	rm -rf $(VENV) .venv-lowest .run .mypy_cache .ruff_cache .pytest_cache *.egg-info
