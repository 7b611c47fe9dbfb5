# mediaingest — two commands matter: `make run` (the service on the embedded default) and `make test`.
# Both work on a fresh Debian machine as root: they install what is missing (python3-venv, ffmpeg,
# chromium for the browser tests, nodejs for the page's own tests) with apt-get, and the Python
# dependencies into .venv/.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha1sum | cut -c1-12)
PORT ?= 8000
HOST ?= 127.0.0.1
# Test files run in parallel, one per worker at a time: one worker per core, at most 4 (each holds its own
# PostgreSQL database and connections; PostgreSQL allows 100).
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ $$n -gt 4 ] && n=4; echo $$n)
APT_INSTALL := DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends

.PHONY: run test lint format lock bench bench-quick bench-library bench-batch bench-k8s system-deps browser-deps postgres clean help

help:
	@echo "make run    — serve the API and a worker on http://$(HOST):$(PORT) (SQLite + local storage in ./var)"
	@echo "make test   — run the test suite (SQLite, PostgreSQL at 127.0.0.1:5432, moto S3, real ffmpeg)"
	@echo "make lint   — ruff, mypy on src/ (every def typed, pydantic plugin), import-linter (the layers) and vulture"
	@echo "make lock   — upgrade the Python dependencies and record them in constraints.txt"
	@echo "make bench  — benchmarks in bench/ (make bench-quick for a short run; make bench-batch: 500 assets at once;"
	@echo "              make bench-library: the API and the queue with 100,000 assets on PostgreSQL; make bench-k8s: the operator at load)"
	@echo "make image  — the three OCI images, no Docker daemon (worker-image/); make image-test smoke-tests them"
	@echo "make helm-lint, make e2e-kind — Kubernetes (docs/kubernetes.md)"

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -m venv --help >/dev/null 2>&1 && $(PYTHON) -c 'import ensurepip' 2>/dev/null \
		|| { apt-get update -qq && $(APT_INSTALL) python3-venv; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]' -c constraints.txt
	@rm -f $(VENV)/.installed-* && touch $@

system-deps:
	@command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null \
		|| { echo "installing ffmpeg"; apt-get update -qq && $(APT_INSTALL) ffmpeg; }
	@# espeak-ng speaks the transcript tests' sentences (tests/fixtures/speech.py)
	@command -v espeak-ng >/dev/null || { echo "installing espeak-ng"; apt-get update -qq && $(APT_INSTALL) espeak-ng; }

browser-deps:
	@command -v chromium >/dev/null || test -x /usr/lib/chromium/chromium \
		|| { echo "installing chromium"; apt-get update -qq && $(APT_INSTALL) chromium; }

# The page's pure modules are tested by node's own test runner (Node 18 or newer; Debian 12 has 18).
.PHONY: node-deps test-js
node-deps:
	@command -v node >/dev/null || { echo "installing nodejs"; apt-get update -qq && $(APT_INSTALL) nodejs; }

test-js: node-deps
	node --test tests/web/js/

# Starts the machine's PostgreSQL cluster when it is installed but down (tests need it).
postgres:
	@if command -v pg_ctlcluster >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then \
		pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | head -1) main start || true; fi

run: system-deps $(STAMP)
	@mkdir -p var
	$(BIN)/mediaingest db upgrade
	@echo
	@echo "  mediaingest on http://$(HOST):$(PORT)  (the upload page; API docs at /docs)"
	@echo "  a user and its API token:  $(BIN)/mediaingest users create --email you@example.com [--plan PRO]"
	@echo
	HOST=$(HOST) PORT=$(PORT) $(BIN)/mediaingest serve --embedded-worker

test: system-deps browser-deps node-deps postgres $(STAMP)
	$(BIN)/ruff check src tests bench migrations
	$(BIN)/mypy
	$(BIN)/lint-imports
	node --test tests/web/js/
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

# Benchmarks (bench/, never collected by pytest): ratios against ffmpeg's floor and the naive ladder, upload
# load. Sources are generated once into bench/.cache/; results go to bench/results/. BENCH_ARGS passes options.
bench: system-deps postgres $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

bench-quick: system-deps postgres $(STAMP)
	$(BIN)/python -m bench --quick $(BENCH_ARGS)

# The library at 100,000 assets (and 1,000,000 finished tasks) on the PostgreSQL server at 127.0.0.1:5432:
# p50/p95 of the listing, search, filters, sorts, deep pages, an asset, its status and the claim.
bench-library: postgres $(STAMP)
	$(BIN)/python -m bench.library $(BENCH_ARGS)
# The batch alone: 300 stills, 100 clips and 100 voice notes by 8 clients against the floor
# (bench/results/batch.md); BENCH_ARGS="--batch-scale 0.1" for a quick check.
bench-batch: system-deps $(STAMP)
	$(BIN)/python -m bench batch $(BENCH_ARGS)

# The Kubernetes executor at load with no cluster: 2,000 assets through the API, the operator and a fake
# API server with a simulated kubelet; objects, writes and operator memory per asset (docs/kubernetes.md).
bench-k8s: system-deps postgres $(STAMP)
	$(BIN)/python -m bench.kubernetes $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench migrations
	$(BIN)/ruff format --check src tests bench migrations
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/vulture

format: $(STAMP)
	$(BIN)/ruff format src tests bench migrations
	$(BIN)/ruff check --fix src tests bench migrations

# The versions make test passed with are what everyone installs; upgrading is a deliberate, tested change.
lock: $(STAMP)
	$(BIN)/pip install -q --upgrade -e '.[dev]'
	@{ echo "# Tested versions of every Python dependency (make lock rewrites it from .venv); pip installs with -c."; \
		$(BIN)/pip freeze --exclude-editable | grep -iv '^mediaingest'; } > constraints.txt
	@echo "constraints.txt updated: run make test before committing it"

clean:
	rm -rf var .pytest_cache .ruff_cache test-artifacts

# Kubernetes: helm/kubectl from PyPI, chart lint, image build, kind end-to-end (see docs/kubernetes.md).
include mk/k8s.mk
