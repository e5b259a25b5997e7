#!/usr/bin/env bash
# The GPU proof kit's carry folder, and the one command to run on a lent NVIDIA machine.
#
#   bash bench/gpu_proof_pack.sh [KIT_DIR]        (default .gpukit, which .gitignore lists)
#
# The lent machine has Python 3.12 with CUDA builds of JAX and PyTorch, numpy, psutil and
# nvidia-ml-py, but no Keras and no network. The kit carries:
#   wheels/   keras 3.15.1 and the two dependencies that machine lacks (namex, optree),
#             CPython 3.12 manylinux x86_64, always installed;
#   spare/    Keras's other pure-Python dependencies (absl-py, rich and its two, packaging)
#             and optree's (typing-extensions), each installed only where `import` of it
#             fails there (torch brings typing-extensions; a JAX-only Python lacks it);
#   data/     the verified MNIST cache (its sha256 digests checked here);
#   project.tgz  this working tree (tracked and unignored files), for a machine that does not
#             receive the tree the way the device tool sends it.
# It checks that the kit plus the working tree is under 64 MiB (what one device call carries),
# writes the device command to KIT_DIR/device-command.sh and prints it (under 2,000 characters).
set -euo pipefail
cd "$(dirname "$0")/.."
KIT=${1:-.gpukit}
PY=${PYTHON:-.venv/bin/python}
LIMIT_MIB=64
BUDGET_S=${BUDGET_S:-480}

rm -rf "$KIT"
mkdir -p "$KIT/wheels" "$KIT/spare" "$KIT/data"
TARGET=(--no-deps --only-binary=:all: --python-version 3.12 --implementation cp
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
"$PY" -m pip download -q "${TARGET[@]}" -d "$KIT/wheels" keras==3.15.1 namex optree
"$PY" -m pip download -q "${TARGET[@]}" -d "$KIT/spare" absl-py rich markdown-it-py mdurl pygments packaging \
  typing-extensions

cp data/mnist.npz "$KIT/data/mnist.npz"
"$PY" - "$KIT/data/mnist.npz" <<'PYTHON'
import sys

import numpy as np

from training.worker.mnist import EXPECTED_SHA256, verify

with np.load(sys.argv[1], allow_pickle=False) as npz:
    verify({key: npz[key] for key in EXPECTED_SHA256})  # raises naming the array that differs
print(f"MNIST cache verified: {sys.argv[1]}")
PYTHON

git ls-files -z --cached --others --exclude-standard | tar --null -T - -czf "$KIT/project.tgz"

kit_bytes=$(du -sb "$KIT" | cut -f1)
tree_bytes=$(git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null | paste -sd+ | bc)
total_mib=$(echo "scale=1; ($kit_bytes + $tree_bytes) / 1048576" | bc)
echo "kit $KIT: $(echo "scale=1; $kit_bytes / 1048576" | bc) MiB; with the working tree: $total_mib MiB (limit $LIMIT_MIB)"
if [ "$(echo "$total_mib >= $LIMIT_MIB" | bc)" = 1 ]; then
  echo "error: the kit and the working tree are $total_mib MiB, over the $LIMIT_MIB MiB a device call carries" >&2
  exit 1
fi

# The device command: run from the project root (the device tool's working directory), with
# KIT carried, $OUT the folder that comes back. PROOF_ARGS=--smoke for a CPU rehearsal, or
# PROOF_ARGS="--only sweep" for a second call. Without pip there, a wheel is unzipped instead
# (a wheel is a zip of its installed files; none of these has scripts or data to place).
cat > "$KIT/device-command.sh" <<COMMAND
K=\$PWD/$KIT S=\${SITE:-/tmp/gpukit-site}; put(){ python3 -m pip install -q --no-index --no-deps --target \$S "\$@" || for w; do python3 -m zipfile -e "\$w" \$S; done; }; put \$K/wheels/*.whl; for m in absl:absl_py rich:rich markdown_it:markdown_it_py mdurl:mdurl pygments:pygments packaging:packaging typing_extensions:typing_extensions; do python3 -c "import \${m%%:*}" 2>/dev/null || put \$K/spare/\${m#*:}-*.whl; done; PYTHONPATH=\$S:\$PWD TRAINING_DATA_DIR=\$K/data python3 bench/gpu_proof.py --out \$OUT/proof --budget-s $BUDGET_S \${PROOF_ARGS:-}; rc=\$?; echo "gpu_proof exit \$rc"; exit \$rc
COMMAND
length=$(wc -c < "$KIT/device-command.sh")
if [ "$length" -ge 2000 ]; then
  echo "error: the device command is $length characters, over 2,000" >&2
  exit 1
fi
echo "device command ($length characters; carry [\"$KIT\"], timeout_s 600):"
cat "$KIT/device-command.sh"
