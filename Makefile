# Two commands do all the set-up on a fresh machine:
#   make run    create .venv, install requirements.txt, start the dashboard
#   make test   create or reuse .venv, install everything the tests need, run lint and the suite
#               (and .venv-mlflow: a venv of its own for the `mlflow server` the MLflow tests start)
# and one is the inner loop while you work:
#   make quick  lint and the tests not marked slow (no training, servers or browser): under a minute
# On a machine with an NVIDIA driver both also install the CUDA builds (requirements-gpu.txt,
# and for the tests requirements-backends-gpu.txt). GPU=1 forces that, GPU=0 skips it.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# The MLflow tracking server for the tests, away from TensorFlow's pins (.venv gets only the client).
MLFLOW_VENV ?= .venv-mlflow
PORT ?= 8501
# An NVIDIA driver with a GPU: `nvidia-smi -L` lists one, or the driver's /proc folder is not
# empty. The timeout keeps a wedged driver from hanging make (seconds).
NVIDIA_GPUS_DIR ?= /proc/driver/nvidia/gpus
GPU ?= $(shell { timeout 10 nvidia-smi -L 2>/dev/null | grep -q '^GPU '; } \
	|| [ -n "$$(ls -A $(NVIDIA_GPUS_DIR) 2>/dev/null)" ] && echo 1 || echo 0)
GPU_RUNTIME := $(if $(filter 1,$(GPU)),$(VENV)/.gpu)
GPU_TESTING := $(if $(filter 1,$(GPU)),$(VENV)/.gpu $(VENV)/.gpu-backends)

.PHONY: run test quick lint chromium slurm bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Stamp files re-run pip only when a requirements file changes.
$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.testing: $(VENV)/.runtime requirements-test.txt requirements-backends.txt requirements-cluster.txt \
		requirements-mlflow.txt
	$(BIN)/pip install --quiet -r requirements-test.txt -r requirements-backends.txt -r requirements-cluster.txt \
	  -r requirements-mlflow.txt
	touch $@

$(MLFLOW_VENV)/.server: requirements-mlflow-server.txt
	$(PYTHON) -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/pip install --quiet --upgrade pip
	$(MLFLOW_VENV)/bin/pip install --quiet -r requirements-mlflow-server.txt
	touch $@

# The CUDA builds get stamps of their own, so a GPU machine adds them to an existing .venv
# and `make -n GPU=1` shows the step. Each pip call names the files installed before, so pip
# resolves the nvidia-* wheels against everything at once.
$(VENV)/.gpu: requirements-gpu.txt $(VENV)/.runtime
	$(BIN)/pip install --quiet -r requirements.txt -r requirements-gpu.txt
	touch $@

$(VENV)/.gpu-backends: requirements-backends-gpu.txt $(VENV)/.gpu $(VENV)/.testing
	$(BIN)/pip install --quiet -r requirements.txt -r requirements-gpu.txt \
	  -r requirements-test.txt -r requirements-backends.txt -r requirements-cluster.txt \
	  -r requirements-mlflow.txt -r requirements-backends-gpu.txt
	touch $@

run: $(VENV)/.runtime $(GPU_RUNTIME)
	$(BIN)/streamlit run app.py --server.port $(PORT)

# Debian's chromium for the browser test (never `playwright install`).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium missing and not root: the browser test will be skipped"; fi; }

# Debian's Slurm and munge for the Slurm tests, which start their own daemons in a temp folder
# (tests/slurm_support.py); nothing is configured or started system-wide.
slurm:
	@{ command -v slurmctld && command -v slurmd && command -v munged; } >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null; \
	  else echo "slurm-wlm or munge missing and not root: the Slurm tests will be skipped"; fi; }

lint: $(VENV)/.testing
	$(BIN)/ruff check .

# The suite on every core: most tests wait on a real worker, a server or a browser, so two
# at a time on 2 cores is about 1.6x faster (docs/benchmarks.md). A module whose server is
# started once (Slurm, MLflow) keeps its tests on one worker (xdist_group marks). The Ray
# tests run alone afterwards: a Ray head starved of CPU drops its job agent for minutes.
test: $(VENV)/.testing $(MLFLOW_VENV)/.server $(GPU_TESTING) chromium slurm lint
	$(BIN)/python -m pytest -n auto --dist loadgroup -m "not ray"
	$(BIN)/python -m pytest -m ray

quick: $(VENV)/.testing lint
	$(BIN)/python -m pytest -m "not slow" -q

bench: $(VENV)/.testing
	$(BIN)/python bench/reader_bench.py
	$(BIN)/python bench/compare_page_bench.py
	$(BIN)/python bench/hook_cost.py
	$(BIN)/python bench/time_split_cost.py
	$(BIN)/python bench/live_latency_bench.py
	@echo "needs $(MLFLOW_VENV) (make test builds it): $(BIN)/python bench/mlflow_export_bench.py"
	@echo "slow (minutes): $(BIN)/python bench/worker_overhead.py --epochs 3 --repeats 2"
	@echo "slow (minutes): $(BIN)/python bench/time_split.py --epochs 4"
	@echo "slow (5 minutes, Chromium): $(BIN)/python bench/observer_cost.py  (--quick: 1 pair)"
	@echo "slow (3.6 GB download): $(BIN)/python bench/gpu_requirements.py"

clean:
	rm -rf $(VENV) $(MLFLOW_VENV) test-output .pytest_cache .ruff_cache
