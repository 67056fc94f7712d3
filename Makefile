# Two commands do all the set-up on a fresh machine:
#   make run    install into .venv (first use) and run the bot on the embedded defaults
#   make test   install into .venv with the test tools (first use) and run ruff, pyright and the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint typecheck pytest bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,postgres,local]'
	touch $@

run: $(VENV)/.installed-run
	$(BIN)/hypotez run

lint: $(VENV)/.installed-test
	$(BIN)/ruff check hypotez tests bench
	$(BIN)/ruff format --check hypotez tests bench
	$(BIN)/hadolint Dockerfile

typecheck: $(VENV)/.installed-test
	$(BIN)/pyright

pytest: $(VENV)/.installed-test
	$(BIN)/pytest -q

test: lint typecheck pytest

bench: $(VENV)/.installed-test
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
