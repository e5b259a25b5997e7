# Two commands do all the set-up on a fresh machine:
#   make run    create .venv, install requirements.txt, start the dashboard
#   make test   create or reuse .venv, install everything the tests need, run lint and the suite
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8501

.PHONY: run test lint chromium bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Stamp files re-run pip only when a requirements file changes.
$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.testing: $(VENV)/.runtime requirements-test.txt requirements-backends.txt
	$(BIN)/pip install --quiet -r requirements-test.txt -r requirements-backends.txt
	touch $@

run: $(VENV)/.runtime
	$(BIN)/streamlit run app.py --server.port $(PORT)

# Debian's chromium for the browser test (never `playwright install`).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium missing and not root: the browser test will be skipped"; fi; }

lint: $(VENV)/.testing
	$(BIN)/ruff check .

test: $(VENV)/.testing chromium lint
	$(BIN)/python -m pytest

bench: $(VENV)/.testing
	$(BIN)/python bench/reader_bench.py
	$(BIN)/python bench/compare_page_bench.py
	$(BIN)/python bench/hook_cost.py
	$(BIN)/python bench/live_latency_bench.py
	@echo "slow (minutes): $(BIN)/python bench/worker_overhead.py --epochs 3 --repeats 2"

clean:
	rm -rf $(VENV) test-output .pytest_cache .ruff_cache
