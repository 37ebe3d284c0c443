#!/usr/bin/env bash
# Create .venv and install nuat with its test extras.
# Where no NVIDIA GPU is present, torch is installed first as the CPU build (TORCH_SPEC, default
# torch==2.13.0), so that the package's own requirement torch>=2.1 is already met and pip never
# pulls a multi-GB CUDA build: from PyTorch's CPU index (TORCH_CPU_INDEX) where it can be reached,
# else from pip's own sources (this project's CPU machines carry the CPU build on disk; on other
# machines without that index, check that the torch pip installs is a +cpu build).
# Where a GPU is present, pip resolves torch>=2.1 to the usual CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    index=${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}
    extra=()
    if .venv/bin/python -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + '/', timeout=5)" \
        "$index" >/dev/null 2>&1; then
      extra=(--extra-index-url "$index")  # its +cpu builds outrank PyPI's CUDA build of the same version
    fi
    .venv/bin/python -m pip install -q ${extra[@]+"${extra[@]}"} "${TORCH_SPEC:-torch==2.13.0}"
  fi
fi
.venv/bin/python -m pip install -q -e ".[test]"
echo "installed: $(.venv/bin/python -c 'import torch, nuat; print("nuat", nuat.__version__, "torch", torch.__version__)')"
