# The two commands a newcomer types: `make run` and `make test`. Both build what they need first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check --quiet
# Stamps are named after the hash of what they install, so editing a requirements file reinstalls.
RUN_STAMP := $(VENV)/.run-$(shell cat requirements.txt pyproject.toml | sha256sum | cut -c1-16)
DEV_STAMP := $(VENV)/.dev-$(shell cat requirements.txt requirements-dev.txt pyproject.toml | sha256sum | cut -c1-16)
export ZENML_ANALYTICS_OPT_IN ?= false
export MLFLOW_DISABLE_TELEMETRY ?= true
export ZENML_AUTO_OPEN_DASHBOARD ?= false
export DO_NOT_TRACK ?= true
export NO_MKDOCS_2_WARNING ?= 1

.PHONY: run test test-fast lint docs docs-reference system-deps venv dev-venv clean-venv

run: $(RUN_STAMP)
	$(PY) run.py --stack local

# Lint (ruff, import layers, docs) first: seconds, and it fails before the suite starts.
test: $(DEV_STAMP) system-deps lint
	$(PY) -m pytest $(PYTEST_ARGS)

# The unit tests alone (no pipeline run, no server, no browser): about a minute on 2 cores.
test-fast: $(DEV_STAMP)
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-logo --no-cache
	$(PY) docs/generate_reference.py --check
	$(VENV)/bin/mkdocs build --strict --quiet --site-dir test-output/site

# The documentation site in ./site (`mkdocs serve` for a live preview on 127.0.0.1:8000).
docs: $(DEV_STAMP)
	$(PY) docs/generate_reference.py
	$(VENV)/bin/mkdocs build --strict

# Rewrite the generated reference pages (configuration, artifacts, registry tags) after changing an option.
docs-reference: $(DEV_STAMP)
	$(PY) docs/generate_reference.py

venv: $(RUN_STAMP)
dev-venv: $(DEV_STAMP)

$(RUN_STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade "pip==26.3"
	$(PIP) install -r requirements.txt
	$(PIP) install --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	rm -f $(VENV)/.run-* && touch $@

$(DEV_STAMP): $(RUN_STAMP) requirements-dev.txt
	$(PIP) install -r requirements-dev.txt
	$(PY) -m pip check
	rm -f $(VENV)/.dev-* && touch $@

# Chromium + chromedriver (Debian) for the browser tests, Azurite (npm) for the Azure Blob tests.
system-deps:
	bash scripts/install-system-deps.sh

clean-venv:
	rm -rf $(VENV)
