# Two commands do all set-up on a fresh machine (see README):
#   make app    create .venv, install, start the Studio on the built-in digits data
#   make test   create .venv, install, run every test (core, app, browser)
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: app test bench venv

$(STAMP): requirements.txt requirements-dev.txt requirements-nodeps.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	$(BIN)/pip install -q --no-deps -r requirements-nodeps.txt
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

app: $(STAMP)
	$(BIN)/streamlit run app.py

# One OpenMP thread per test process (and its streamlit subprocesses): CI has two shared cores,
# and oversubscribed threads made the suite several times slower. The app keeps the default.
# ruff first: the code passing its configuration (pyproject.toml) is part of every test run.
test: $(STAMP)
	$(BIN)/ruff check .
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest

bench: $(STAMP)
	for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done
