# tsguard developer entry points. `make demo` and `make test` install what is
# missing first (virtualenv, Python packages, Kafka jars, Debian packages).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
TSG := $(BIN)/tsguard
STAMP := $(VENV)/.installed
DEMO_SECONDS ?= 0
PYTEST_ARGS ?=
# `make test` runs two pytest processes: the tests of the local stack in one, in their
# order, and the unit tests and doctests in the other (tests/conftest.py); 0 runs one.
TEST_PROCESSES ?= 2

.PHONY: setup demo test lint typecheck unit integration stack-up stack-down bench gutentag clean constraints

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt constraints-runtime.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

stack-up: setup
	$(TSG) stack up

stack-down:
	@test -x $(TSG) && $(TSG) stack down || true

demo: setup
	$(TSG) demo --seconds $(DEMO_SECONDS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check stream_app connectors tests benchmarks

typecheck: setup
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest -q tests/unit stream_app connectors benchmarks $(PYTEST_ARGS)

integration: setup
	$(BIN)/pytest -q tests/integration $(PYTEST_ARGS)

# The whole suite against the real local stack; the stack is stopped again
# whatever the outcome, and the exit status is the suite's.
test: setup
	$(TSG) stack up
	@status=0; \
	$(BIN)/ruff check . || status=1; \
	$(BIN)/mypy || status=1; \
	$(BIN)/pytest -n $(TEST_PROCESSES) --dist loadgroup tests stream_app connectors benchmarks $(PYTEST_ARGS) || status=1; \
	$(TSG) stack down || status=1; \
	exit $$status

# The benches measure what ships: the wheel (scoring hot path compiled with mypyc),
# installed in its own virtualenv, not the editable pure-Python checkout.
BENCH_VENV := .venv-bench
bench: setup
	rm -rf build/bench-wheel
	$(BIN)/python -m pip wheel -q --no-deps --wheel-dir build/bench-wheel .
	@test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q -c constraints-runtime.txt build/bench-wheel/tsguard-*.whl
	$(BENCH_VENV)/bin/python -m pip install -q --force-reinstall --no-deps build/bench-wheel/tsguard-*.whl
	$(BENCH_VENV)/bin/tsguard bench detectors
	$(BENCH_VENV)/bin/tsguard bench pipeline

# An independent check of detection quality: a corpus from GutenTAG, a generator we
# never tuned on, scored as the development set is. GutenTAG pins numpy and scipy
# below ours, so it gets its own virtualenv (pinned by benchmarks/gutentag-constraints.txt).
GUTENTAG_VENV := .venv-gutentag
gutentag: setup
	@test -x $(GUTENTAG_VENV)/bin/python || $(PYTHON) -m venv $(GUTENTAG_VENV)
	$(GUTENTAG_VENV)/bin/python -m pip install -q -c benchmarks/gutentag-constraints.txt timeeval-gutentag
	rm -rf build/gutentag
	$(GUTENTAG_VENV)/bin/python benchmarks/gutentag_corpus.py build/gutentag
	$(TSG) evaluate build/gutentag --labelling nab

# Re-pin the development set (constraints-runtime.txt, the image's pins, is kept
# as it is: refresh it from a venv with only the wheel installed).
constraints:
	( echo '# Development pins: the run-time set plus test, lint and optional (parquet) tools.'; \
	  echo '-c constraints-runtime.txt'; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v '^tsguard' \
	    | grep -v -i -x -F -f <(grep -v '^#' constraints-runtime.txt) ) > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf $(VENV) $(BENCH_VENV) $(GUTENTAG_VENV) .pytest_cache .mypy_cache .ruff_cache
