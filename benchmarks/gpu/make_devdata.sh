#!/usr/bin/env bash
# Build .devdata/, what a device command needs beside the working tree (run_gpu_bench.sh's DATA
# and PYTHONPATH; benchmarks/gpu/README.md): a copy of cifar10-jpeg, and the Python files of
# pyautoattack (AutoAttack) and of pytest with its dependencies (the `tests` stage), taken from
# the project's Python environment. Model weights, compiled files and caches are left out: the device tool
# carries at most 64 MiB (pass `carry: [".devdata"]`). .devdata/ is ignored by git.
#
#   benchmarks/gpu/make_devdata.sh    # env: DATA (default ../shared/data), PYTHON (default
#                                     # .venv/bin/python), DEST (default .devdata)
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-../shared/data}
PYTHON=${PYTHON:-.venv/bin/python}
DEST=${DEST:-.devdata}
src="$DATA/cifar10-jpeg"
[[ -d "$src" ]] || { echo "make_devdata.sh: no cifar10-jpeg folder at $src; set DATA to the folder holding it" >&2; exit 2; }
site=$("$PYTHON" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])" 2>/dev/null) \
  || { echo "make_devdata.sh: no Python at $PYTHON; run scripts/install.sh first or set PYTHON" >&2; exit 2; }
tmp=$(mktemp -d "$(dirname "$DEST")/.devdata.tmp.XXXXXX")
tmp=$(cd "$tmp" && pwd)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/cifar10-jpeg" "$tmp/site"
cp "$src"/* "$tmp/cifar10-jpeg/"
# pytest's own imports: _pytest, pluggy, iniconfig, packaging, pygments and the one-file `py` shim
for pkg in pyautoattack pytest _pytest pluggy iniconfig packaging pygments py; do
  if [[ -d "$site/$pkg" ]]; then
    # the Python sources only (pyautoattack's package also holds example model weights)
    (cd "$site" && find "$pkg" -name '*.py' -not -path '*/__pycache__/*' -print0 | xargs -0 cp --parents -t "$tmp/site")
  elif [[ -f "$site/$pkg.py" ]]; then
    cp "$site/$pkg.py" "$tmp/site/"
  else
    echo "make_devdata.sh: package $pkg is not installed for $PYTHON (pip install -e '.[test]')" >&2
    exit 2
  fi
done
rm -rf "$DEST"
mv "$tmp" "$DEST"
trap - EXIT
du -sh "$DEST"
