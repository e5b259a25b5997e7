#!/usr/bin/env bash
# Rehearse the GPU proof on this CPU, in an environment like the lent GPU machine's.
#
#   bash bench/minimal_env_check.sh            (about 3 minutes: a venv, pip installs, the smoke)
#
# A fresh Python 3.12 venv with only what that machine has for this project: JAX (CPU build
# here, CUDA there), numpy, psutil, nvidia-ml-py. No Keras, TensorFlow, torch, Streamlit,
# pandas or plotly. Then the exact device command that bench/gpu_proof_pack.sh prints, with
# its python3 being this venv's, $OUT a temp folder and PROOF_ARGS=--smoke: Keras and its
# missing dependencies come from the kit's wheels, MNIST from the kit's cache. Then the
# commands that must work there without TensorFlow or Streamlit: list, export, compare,
# doctor, probe, import-runs of the tarball. Exit 0 only if all of that works.
set -euo pipefail
cd "$(dirname "$0")/.."
PY312=${PY312:-$HOME/.pyenv/versions/3.12.1/bin/python3.12}
VENV=${VENV:-/tmp/venv312-gpukit}
WORK=$(mktemp -d /tmp/minimal-env-check.XXXXXX)
if ! [ -x "$PY312" ]; then echo "skip: no Python 3.12 at $PY312 (set PY312)" >&2; exit 3; fi
[ -f .gpukit/device-command.sh ] || bash bench/gpu_proof_pack.sh >/dev/null

rm -rf "$VENV"
"$PY312" -m venv "$VENV"
"$VENV/bin/pip" install -q jax==0.10.2 jaxlib==0.10.2 psutil nvidia-ml-py 2>&1 | grep -v "^WARNING: Location" || true
for absent in keras tensorflow torch streamlit pandas plotly; do
  if "$VENV/bin/python" -c "import $absent" 2>/dev/null; then echo "error: $absent is installed in $VENV" >&2; exit 1; fi
done

started=$(date +%s)
PATH="$VENV/bin:$PATH" OUT="$WORK/out" SITE="$WORK/site" PROOF_ARGS=--smoke \
  bash -c "$(cat .gpukit/device-command.sh)"
echo "smoke via the device command: $(( $(date +%s) - started )) s"

export PYTHONPATH="$WORK/site:$PWD" TRAINING_DATA_DIR="$PWD/.gpukit/data"
py="$VENV/bin/python"
runs="$WORK/out/proof/runs"
"$py" -c "import sys; print('python', sys.version.split()[0])"
"$py" -m training list --runs-dir "$runs"
first=$("$py" -m training list --json --runs-dir "$runs" | "$py" -c "import json,sys; print([r['id'] for r in json.load(sys.stdin) if r['source'] == 'local'][0])")
"$py" -m training export "$first" --runs-dir "$runs" | head -3
"$py" -m training compare "$first" ref-keras-cpu --runs-dir "$runs" | tail -2
"$py" -m training doctor --runs-dir "$runs" | tail -2
"$py" -m training probe jax --json --runs-dir "$runs"
"$py" -m training import-runs "$(ls "$WORK"/out/proof/gpu-proof-*.tgz)" --runs-dir "$WORK/home" | wc -l \
  | xargs echo "runs imported from the tarball:"
echo "minimal environment check passed ($WORK)"
