# espnet_msrs — the two commands a fresh machine needs:
#   make demo   the embedded synthetic audio-visual recipe, stages 1-13
#   make test   the test suite
# Both create the Python environment (.venv) first if it is missing or stale.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ENV_HASH := $(shell cat requirements.txt setup.py Makefile | sha1sum | cut -c1-12)
STAMP := $(VENV)/.env-$(ENV_HASH)
DEMO_DIR := egs2/synthgrid/avsr1
PYTEST_ARGS ?=

.PHONY: env test demo clean-env

env: $(STAMP)

$(STAMP):
	@echo "== creating the environment in $(VENV) (espnet 202511, torch 2.11) =="
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -r requirements.txt "pytest==8.*"
	@# espnet_model_zoo would re-resolve torch: its run-time deps are in requirements.txt
	$(PY) -m pip install --disable-pip-version-check --no-deps "espnet_model_zoo==0.1.7"
	$(PY) -m pip install --disable-pip-version-check --no-deps -e .
	@# sclite (Debian's sctk) is optional: scoring falls back to our own scorer.
	@if [ ! -x /usr/lib/sctk/bin/sclite ] && ! command -v sclite >/dev/null \
	    && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get install -y -qq sctk >/dev/null 2>&1 || \
	     (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq sctk >/dev/null 2>&1)) \
	    || echo "note: could not install sctk; sclite comparisons will be skipped"; \
	fi
	@rm -f $(VENV)/.env-*
	@touch $@

test: env
	$(PY) -m pytest -q $(PYTEST_ARGS) tests

demo: env
	cd $(DEMO_DIR) && PATH="$(CURDIR)/$(VENV)/bin:$$PATH" ./run.sh --stage 1 --stop_stage 13

clean-env:
	rm -rf $(VENV)
