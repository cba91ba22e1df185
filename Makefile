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
# pip says only what went wrong: no progress, no "location ignored" warnings, no upgrade notice.
PIP_INSTALL := $(BIN)/python -m pip install --quiet --quiet --disable-pip-version-check

.PHONY: demo venv test test-fast lint typecheck bench clean

$(STAMP): pyproject.toml
	@echo "fw: creating $(VENV) and installing fw into it (a minute or so, the first time)"
	@$(PYTHON) -m venv $(VENV)
	@$(PIP_INSTALL) --upgrade pip
	@$(PIP_INSTALL) -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	@$(BIN)/fw codegen --app example_app
	@$(BIN)/python -m example_app.demo
	@echo ""
	@echo "Next: fw is installed in $(VENV), not on your PATH; activate it first:"
	@echo "  . $(VENV)/bin/activate"
	@echo "  fw instances list --app example_app      # the instances the demo just ran"
	@echo "  fw dev --app example_app                 # watch, run a worker, serve the API and Studio:"
	@echo "                                           #   open http://127.0.0.1:8787/studio"
	@echo "  fw start order-pipeline --app example_app --params '{\"order_id\": \"o-1\", \"amount\": 4200}' --wait   # beside fw dev"
	@echo "Then read README.md, \"Quick start\", to make an app of your own."

# The suite mostly waits (on processes, fsyncs, timers), so it runs in TEST_JOBS pytest
# processes at once, each taking whole test files; TEST_JOBS=0 runs it in this one.
# TESTS picks tests by pytest node id (all of them when empty).
TEST_JOBS ?= 4
TESTS ?=
TEST_ARGS := $(if $(filter 0,$(TEST_JOBS)),,-n $(TEST_JOBS) --dist loadfile)

# Bytecode is compiled first: the suite starts hundreds of `fw` processes, and where
# PYTHONDONTWRITEBYTECODE is set (as on CI machines) each would compile fw's source again
# (~0.15 s apiece). compileall writes the caches anyway, and only for changed files.
COMPILE := $(BIN)/python -m compileall -q framework example_app

test: $(STAMP)
	@$(COMPILE)
	$(BIN)/python -m pytest $(TEST_ARGS) $(TESTS)

# The suite without the slow tests (many processes, a browser): a few seconds' feedback.
test-fast: $(STAMP)
	@$(COMPILE)
	$(BIN)/python -m pytest -m "not slow" $(TEST_ARGS) $(TESTS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pyright

bench: $(STAMP)
	$(PIP_INSTALL) -e '.[dev,bench]'
	$(BIN)/python -m bench

clean:
	rm -rf .venv .venv-* .pytest_cache .mypy_cache .ruff_cache
