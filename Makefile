# Two commands do all the set-up on a fresh machine:
#   make run    install into .venv (first use) and run the bot on the embedded defaults
#   make test   install into .venv with the test tools (first use) and run ruff, pyright and the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint typecheck pytest bench mutate clean system-deps

# espeak-ng (the local voice when edge-tts fails; the tests speak with it): installed with apt-get where that is
# possible, else named.  Nothing else outside Python is needed (PyAV brings its own audio libraries).
system-deps:
	@command -v espeak-ng >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && apt-get install -y -qq --no-install-recommends espeak-ng >/dev/null; \
	  else \
	    echo "espeak-ng is missing: install it with your package manager (e.g. apt-get install espeak-ng)," \
	         "or set HYPOTEZ_VOICE_ENABLED=false for a text-only bot"; \
	  fi; }

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,postgres,local,serve]'
	@# The test install holds the run install: `make run` after `make test` installs nothing again.
	touch $@ $(VENV)/.installed-run

run: system-deps $(VENV)/.installed-run
	$(BIN)/hypotez run

lint: $(VENV)/.installed-test
	$(BIN)/ruff check hypotez tests bench
	$(BIN)/ruff format --check hypotez tests bench
	$(BIN)/hadolint Dockerfile

typecheck: $(VENV)/.installed-test
	$(BIN)/pyright

pytest: system-deps $(VENV)/.installed-test
	$(BIN)/pytest -q

test: lint typecheck pytest

bench: $(VENV)/.installed-test
	$(BIN)/python -m bench

# Mutation testing of the permission, sandbox and archive, custom-id and dataset-parser code (mutmut, configured
# in pyproject.toml): each mutant runs against the tests that execute it; then the score per module, equivalent
# mutants left out (tests/mutation/README.md).  A few minutes at low priority on two cores; not part of `make test`.
mutate: $(VENV)/.installed-test
	rm -rf mutants
	nice -n 19 $(BIN)/mutmut run --max-children 2
	$(BIN)/python -m tests.mutation.score $(BIN)/mutmut

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache mutants
