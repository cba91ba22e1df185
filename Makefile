# The two commands of the README: `make demo` and `make test`. Needs only Python >= 3.11, git, make.
# `make test PYTHON=python3.13` tests another interpreter in a venv of its own (.venv-3.13), so
# runs on several Pythons never clobber each other; the default python3 uses .venv.
PYTHON ?= python3
ifeq ($(origin PYTHON),file)
VENV ?= .venv
else
PYTHON_VERSION := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
ifeq ($(PYTHON_VERSION),)
$(error PYTHON=$(PYTHON) does not run here: give a Python >= 3.11 interpreter)
endif
VENV ?= .venv-$(PYTHON_VERSION)
endif
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo venv test test-fast lint typecheck bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/fw codegen --app example_app
	$(BIN)/python -m example_app.demo

test: $(STAMP)
	$(BIN)/python -m pytest

# The suite without the slow tests (many processes, a browser): a few seconds' feedback.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pyright

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench

clean:
	rm -rf .venv .venv-* .pytest_cache .mypy_cache .ruff_cache
