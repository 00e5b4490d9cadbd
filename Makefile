# espnet_msrs — the two commands a fresh machine needs:
#   make demo   the embedded synthetic audio-visual recipe, stages 1-13
#   make test   the test suite
# Both create the Python environment (.venv) from requirements.lock first if it
# is missing or stale. `make lock` regenerates the lock from requirements.in.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
LOCK := requirements.lock
ENV_HASH := $(shell cat $(LOCK) setup.py tools/check_env.py | sha1sum | cut -c1-12)
STAMP := $(VENV)/.env-$(ENV_HASH)
DEMO_DIR := egs2/synthgrid/avsr1
PYTEST_ARGS ?=

.PHONY: env lock test demo clean-env

env: $(STAMP)

# uv (pinned with its hash in the lock) is bootstrapped with pip, then installs
# exactly the lock, compiled to bytecode (imports of espnet2 take 8 s instead of
# 13 s where PYTHONDONTWRITEBYTECODE is set); the check fails at once if the
# core stack does not import.
$(STAMP):
	@echo "== creating the environment in $(VENV) from $(LOCK) =="
	@start=$$(date +%s); \
	set -e; \
	test -x $(PY) || $(PYTHON) -m venv $(VENV); \
	awk '/^uv==/{p=1} p{print} p&&!/\\$$/{exit}' $(LOCK) > $(VENV)/uv-pin.txt; \
	$(PY) -m pip install -q --disable-pip-version-check --require-hashes --no-deps -r $(VENV)/uv-pin.txt; \
	$(UV) pip sync -q --compile-bytecode --python $(PY) --require-hashes $(LOCK); \
	$(UV) pip install -q --python $(PY) --no-deps --no-build-isolation -e .; \
	$(PY) tools/check_env.py $(LOCK); \
	echo "== environment ready in $$(( $$(date +%s) - start )) s =="
	@# sclite (Debian's sctk) scores when installed; jiwer (in the lock) otherwise.
	@if [ ! -x /usr/lib/sctk/bin/sclite ] && ! command -v sclite >/dev/null \
	    && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get install -y -qq sctk >/dev/null 2>&1 || \
	     (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq sctk >/dev/null 2>&1)) \
	    || echo "note: could not install sctk; scoring uses jiwer"; \
	fi
	@rm -f $(VENV)/.env-*
	@touch $@

# Resolve requirements.in into the lock (exact versions + hashes, Linux x86_64,
# CPython 3.11). Needs uv: the env's own, or any on PATH.
lock:
	@uv=$$( [ -x $(UV) ] && echo $(UV) || command -v uv ) || { echo "make lock needs uv (make env, or pip install uv)"; exit 1; }; \
	$$uv pip compile requirements.in --python-version 3.11 \
	    --python-platform x86_64-manylinux_2_28 --generate-hashes --no-header -q -o $(LOCK)
	@echo "wrote $(LOCK) ($$(grep -c '^[A-Za-z0-9].*==' $(LOCK)) packages)"

test: env
	$(PY) -m pytest -q $(PYTEST_ARGS) tests

demo: env
	cd $(DEMO_DIR) && PATH="$(CURDIR)/$(VENV)/bin:$$PATH" ./run.sh --stage 1 --stop_stage 13

clean-env:
	rm -rf $(VENV)
