#!/usr/bin/env bash
# Creates (or completes) the virtual environment for pyramidkd_mm on a CPU host.
# Idempotent: each step checks what is already there, so a second run takes seconds.
#
#   bash tools/install.sh [VENV]        (default .venv)
#
# Environment knobs:
#   PYTHON           interpreter for the venv (default python3)
#   WHEEL_CACHE      where the built mmcv wheel is kept (default ~/.cache/pyramidkd_mm/wheels)
#   MMCV_WHEEL_DIR   extra folder searched for a prebuilt mmcv wheel before building one
set -euo pipefail

VENV=${1:-.venv}
PYTHON=${PYTHON:-python3}
TORCH_VERSION=2.13.0
TORCHVISION_VERSION=0.28.0
MMCV_VERSION=2.1.0
WHEEL_CACHE=${WHEEL_CACHE:-$HOME/.cache/pyramidkd_mm/wheels}/torch-$TORCH_VERSION
ROOT=$(cd "$(dirname "$0")/.." && pwd)

log() { printf '\033[1m[install +%ss]\033[0m %s\n' "$SECONDS" "$*"; }

[ -x "$VENV/bin/python" ] || { log "creating $VENV"; "$PYTHON" -m venv "$VENV"; }
PY="$VENV/bin/python"
PIP="$PY -m pip --disable-pip-version-check"

# torch + torchvision as a matched pair from PyPI: --isolated ignores a local pip configuration
# that prefers a CPU-only torch wheel, beside which PyPI's torchvision fails to load.
if ! "$PY" -c "import torch, torchvision.ops; assert torch.__version__.startswith('$TORCH_VERSION')" 2>/dev/null; then
  log "installing torch $TORCH_VERSION + torchvision $TORCHVISION_VERSION"
  $PIP install --isolated "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
fi

# openmim first: it downgrades setuptools, which the build pins below restore.
$PIP install -q openmim -r "$ROOT/requirements/build.txt" "mmengine==0.10.7"

if ! "$PY" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '$MMCV_VERSION'" 2>/dev/null; then
  mkdir -p "$WHEEL_CACHE"
  wheel=$(ls "$WHEEL_CACHE"/mmcv-$MMCV_VERSION-*.whl ${MMCV_WHEEL_DIR:+"$MMCV_WHEEL_DIR"/mmcv-$MMCV_VERSION-*.whl} 2>/dev/null | head -n 1 || true)
  if [ -z "$wheel" ]; then
    log "building mmcv $MMCV_VERSION with CPU ops (about 12 minutes on 2 cores; cached in $WHEEL_CACHE)"
    MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=${MAX_JOBS:-2} \
      $PIP wheel --no-cache-dir --no-deps --no-build-isolation "mmcv==$MMCV_VERSION" -w "$WHEEL_CACHE"
    wheel=$(ls "$WHEEL_CACHE"/mmcv-$MMCV_VERSION-*.whl | head -n 1)
  fi
  log "installing $wheel"
  $PIP install "$wheel"
fi

log "installing toolboxes and test requirements"
$PIP install -q -c "$ROOT/requirements/tested.txt" \
  -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/tests.txt"
# A PEP 660 editable install, as a user's `pip install -e .` makes; the
# install-mode tests build the package again with current setuptools from
# this folder, offline.
$PIP download -q --no-deps --only-binary=:all: "setuptools>=80" \
  -d "$VENV/build-wheels"
$PIP install -q --no-deps --no-build-isolation -e "$ROOT"
"$PY" -c "import pyramidkd_mm; print('pyramidkd_mm', pyramidkd_mm.__version__, 'ready')"
log "done"
