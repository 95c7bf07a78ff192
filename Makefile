# The front door: `make demo` and `make test` work on a machine with only Python 3.11 and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint typecheck pytest torture bench cov clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/tts-runner run examples/demo/book.yaml

lint: $(STAMP)
	$(BIN)/ruff check runner tests
	$(BIN)/ruff format --check runner tests

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -m "not slow" -p no:cacheprovider

test: lint typecheck pytest

torture: $(STAMP)
	$(BIN)/pytest -m slow -p no:cacheprovider tests/torture

bench: $(STAMP)
	$(BIN)/python tests/bench/run.py

cov: $(STAMP)
	$(BIN)/coverage run -m pytest -m "not slow" -p no:cacheprovider
	$(BIN)/coverage combine
	$(BIN)/coverage report

clean:
	rm -rf $(VENV) build dist .mypy_cache .ruff_cache .pytest_cache .coverage* examples/*/out examples/*/.tts-runner
