# `make demo` and `make test` work on a fresh machine: each creates .venv when missing
# and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PIP_INSTALL := $(PIP) install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: demo test bench lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check --upgrade pip

$(VENV)/.installed-base: $(PY) pyproject.toml constraints.txt
	$(PIP_INSTALL) -e .
	@touch $@

$(VENV)/.installed-dev: $(PY) pyproject.toml constraints.txt
	$(PIP_INSTALL) -e ".[dev,s3,server]"
	@touch $@ $(VENV)/.installed-base

demo: $(VENV)/.installed-base
	$(PY) examples/quickstart.py

test: $(VENV)/.installed-dev
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.installed-dev
	$(PY) -m benchmarks $(BENCH_ARGS)

lint: $(VENV)/.installed-dev
	$(PY) -m ruff check kitaru server tests benchmarks examples

clean:
	rm -rf $(VENV) .pytest_cache benchmarks/results/*.json tests/artifacts
