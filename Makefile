# nubis — the two commands are `make up` and `make test` (see README.md).
# Everything here is idempotent: re-running a target redoes only what is missing.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STATE  ?= var

# Debian packages nubis needs on a fresh bookworm machine (root).
APT_PACKAGES := build-essential pkg-config python3-dev python3-venv \
	libisal-dev libssl-dev libxxhash-dev memcached attr iproute2 cpio dnsmasq-base nftables iputils-ping busybox \
	postgresql \
	qemu-system-x86 qemu-utils libvirt-daemon libvirt-daemon-driver-qemu \
	libvirt-clients libvirt-dev genisoimage

PYTEST_ARGS ?=

.PHONY: help deps venv build up down status test test-unit test-swift-compat test-pure bench bench-ring \
	bench-swift bench-identity bench-scheduler bench-ec bench-image bench-replication lint lint-imports typecheck-tree debug clean

help:
	@echo "make up      install apt packages + .venv, build, start nubis"
	@echo "make test    install what tests need, run the whole suite"
	@echo "make bench   run every benchmark (bench-ring, bench-swift, ...)"
	@echo "make lint    ruff + mypy + lint-imports (the layer contracts)"
	@echo "make debug   rebuild extensions with Cython line tracing + annotations"

# --- installation -----------------------------------------------------------
deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	    dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" != 0 ]; then echo "need root to apt-get install:$$missing"; exit 2; fi; \
	    echo "apt-get install:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

$(VENV)/.installed: pyproject.toml setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel Cython numpy
	$(PIP) install -q -e '.[test,dev]'
	@touch $@

venv: deps $(VENV)/.installed

# Rebuild the Cython extensions in place (editable install).
build: venv
	$(PY) setup.py -q build_ext --inplace
	@$(PY) -c 'import nubis.fastpath as f; print("nubis.fastpath:", f.IMPLEMENTATION)'

# --- running ----------------------------------------------------------------
up: build
	$(VENV)/bin/nubis-ring-builder --help >/dev/null
	$(VENV)/bin/nubis --version
	$(VENV)/bin/nubis up --state-dir $(STATE)

down:
	$(VENV)/bin/nubis down --state-dir $(STATE)

status:
	$(VENV)/bin/nubis status --state-dir $(STATE)

# --- tests ------------------------------------------------------------------
# pytest exits 5 when no test ran: that fails `make test` like any other error.
test: build lint-imports
	$(PY) -m pytest tests --durations=30 $(PYTEST_ARGS)
	NUBIS_NO_EXTENSIONS=1 $(PY) -m pytest tests/unit -q -p no:randomly $(PYTEST_ARGS)
	$(MAKE) test-swift-compat

# Swift's own functional suite (pinned sdist, own .venv-swift-compat) against a test cloud;
# fails when a test listed in tests/compat/swift-passed.txt stops passing.
test-swift-compat: build
	$(PY) -m tests.compat.run $(COMPAT_ARGS)

test-unit: build
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

# --- benchmarks -------------------------------------------------------------
bench: bench-ring bench-swift bench-identity bench-scheduler bench-ec bench-image bench-replication

bench-ring: build
	$(PY) -m nubis.bench ring

bench-swift: build
	$(PY) -m nubis.bench swift $(BENCH_ARGS)

bench-replication: build
	$(PY) -m nubis.bench replication $(BENCH_ARGS)

bench-identity: build
	$(PY) -m nubis.bench identity

bench-scheduler: build
	$(PY) -m nubis.bench scheduler --hosts 1000,10000,100000

# gcc compiles the raw ISA-L ceiling loop (bench/ec_ceiling.c) at bench time.
bench-ec: build
	$(PY) -m nubis.bench ec $(BENCH_ARGS)

bench-image: build
	$(PY) -m nubis.bench image $(BENCH_ARGS)

# --- quality ----------------------------------------------------------------
# mypy and import-linter cannot follow the editable install's folder->package map,
# so they check a symlink tree build/typecheck/nubis/{common,ring,...} that mirrors it.
lint: venv lint-imports
	$(VENV)/bin/ruff check .
	cd build/typecheck && ../../$(VENV)/bin/mypy --config-file ../../pyproject.toml -p nubis

typecheck-tree:
	@rm -rf build/typecheck && mkdir -p build/typecheck/nubis
	@for f in nubis/*; do ln -s ../../../$$f build/typecheck/nubis/$$(basename $$f); done
	@for d in common api daemons ring fastpath bench; do ln -s ../../../$$d build/typecheck/nubis/$$d; done

# The layer contracts of pyproject.toml ([tool.importlinter]; ARCHITECTURE.md "Layers").
lint-imports: venv typecheck-tree
	cd build/typecheck && PYTHONPATH=. ../../$(VENV)/bin/lint-imports --no-cache ../../pyproject.toml

debug: venv
	NUBIS_DEBUG_BUILD=1 $(PY) setup.py -q build_ext --inplace --force
	@echo "annotated sources: fastpath/*.html"

clean:
	rm -rf build *.egg-info fastpath/*.c fastpath/*.so fastpath/*.html
