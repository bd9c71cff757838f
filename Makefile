# The two commands a newcomer types: `make run` and `make test`. Both build what they need first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
# The stamp is named after the requirements' hash, so editing requirements.txt reinstalls.
STAMP := $(VENV)/.installed-$(shell sha256sum requirements.txt | cut -c1-16)
export ZENML_ANALYTICS_OPT_IN ?= false
export MLFLOW_DISABLE_TELEMETRY ?= true
export ZENML_AUTO_OPEN_DASHBOARD ?= false
export DO_NOT_TRACK ?= true

.PHONY: run test test-fast system-deps venv clean-venv

run: $(STAMP)
	$(PY) run.py --stack local

test: $(STAMP) system-deps
	$(PY) -m pytest $(PYTEST_ARGS)

# Unit tests only (no pipeline runs, no browser, no Azurite): seconds.
test-fast: $(STAMP)
	$(PY) -m pytest -m "not integration" $(PYTEST_ARGS)

venv: $(STAMP)

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade "pip==26.3"
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip check
	rm -f $(VENV)/.installed-* && touch $@

# Chromium + chromedriver (Debian) for the browser tests, Azurite (npm) for the Azure Blob tests.
system-deps:
	bash scripts/install-system-deps.sh

clean-venv:
	rm -rf $(VENV)
