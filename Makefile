# One command per chore; CI (.ci/run) calls `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.stamp-run
STAMP_DEV := $(VENV)/.stamp-dev
STAMP_BENCH := $(VENV)/.stamp-bench
PIP_FLAGS := --disable-pip-version-check --quiet

.PHONY: serve test lint format typecheck bench piper system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) --upgrade pip

$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(BIN)/pip install $(PIP_FLAGS) -e .
	touch $@

$(STAMP_DEV): pyproject.toml | $(BIN)/python
	$(BIN)/pip install $(PIP_FLAGS) -e '.[dev]'
	touch $@ $(STAMP_RUN)

## Create .venv, install, migrate and serve on http://127.0.0.1:8000 (SQLite + ./data).
serve: $(STAMP_RUN)
	$(BIN)/conveyor migrate
	$(BIN)/conveyor serve

## Lint, type-check, then the whole suite (PostgreSQL tests skip unless PostgreSQL answers).
test: $(STAMP_DEV) lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP_DEV)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

format: $(STAMP_DEV)
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

typecheck: $(STAMP_DEV)
	$(BIN)/mypy src

$(STAMP_BENCH): $(STAMP_DEV) pyproject.toml
	$(BIN)/pip install $(PIP_FLAGS) -e '.[dev,bench]'
	touch $@

## Benchmarks (not tests): numbers go to bench/RESULTS.md. BENCH_ARGS="peer --quick" etc.
bench: $(STAMP_BENCH)
	$(BIN)/python -m bench $(BENCH_ARGS)

## The GPL neural voice (piper extra) in the same venv; -e keeps the install editable.
piper: $(STAMP_RUN)
	$(BIN)/pip install $(PIP_FLAGS) -e '.[piper]'

## Debian packages the local engines call (speech, OCR, translation), and the browser the
## console's tests drive (chromium, with a font for screenshots). Needs root.
SYSTEM_PACKAGES := espeak-ng tesseract-ocr tesseract-ocr-eng tesseract-ocr-rus tesseract-ocr-deu \
	apertium apertium-eng-spa ffmpeg chromium fonts-dejavu-core
system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "system packages present"; fi

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
