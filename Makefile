# `make demo` and `make test` work on a fresh machine: each creates .venv when missing
# and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PIP_INSTALL := $(PIP) install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: demo test bench lint clean chromium

# The browser tests (tests/integration/test_ui.py) drive Debian's Chromium through Playwright (never `playwright install`:
# it downloads a browser). Installed from the system packages when missing; sudo only when not root.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

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

chromium:
	@command -v chromium >/dev/null || ($(SUDO) apt-get update && $(SUDO) apt-get install -y chromium chromium-driver)

test: $(VENV)/.installed-dev chromium
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.installed-dev
	$(PY) -m benchmarks $(BENCH_ARGS)

lint: $(VENV)/.installed-dev
	$(PY) -m ruff check kitaru server tests benchmarks examples

clean:
	rm -rf $(VENV) .pytest_cache benchmarks/results/*.json tests/artifacts
