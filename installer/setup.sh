#!/usr/bin/env bash
# Create .venv and install clinview with the right torch build.
#   CPU-only machine (no nvidia-smi): torch 2.13.0 CPU wheel -- never a CUDA download.
#   NVIDIA workstation: CLINVIEW_TORCH=cuda (or an nvidia-smi that works) installs the
#   CUDA build from the PyTorch index for CUDA 12.6 (override with CLINVIEW_TORCH_INDEX).
# Usage: bash installer/setup.sh [test]   ("test" adds pytest, pytest-qt, import-linter)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
"$VPY" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
TORCH_VERSION=${CLINVIEW_TORCH_VERSION:-2.13.0}
mode=${CLINVIEW_TORCH:-auto}
if [ "$mode" = auto ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then mode=cuda; else mode=cpu; fi
fi
if ! "$VPY" -c "import torch" >/dev/null 2>&1; then
  if [ "$mode" = cuda ]; then
    echo "setup: installing CUDA torch $TORCH_VERSION"
    "$VPY" -m pip install -q "torch==$TORCH_VERSION" --index-url "${CLINVIEW_TORCH_INDEX:-https://download.pytorch.org/whl/cu126}"
  else
    echo "setup: installing CPU torch $TORCH_VERSION"
    # A local wheel (find-links / pip.conf) is used when present; otherwise the
    # PyTorch CPU index, so a CPU machine never downloads the CUDA build.
    if ! "$VPY" -m pip install -q "torch==$TORCH_VERSION+cpu" 2>/dev/null \
       && ! "$VPY" -m pip install -q --no-index --find-links /opt/wheels "torch==$TORCH_VERSION" 2>/dev/null; then
      "$VPY" -m pip install -q "torch==$TORCH_VERSION" --index-url https://download.pytorch.org/whl/cpu
    fi
  fi
fi
extra=""
[ "${1:-}" = test ] && extra="[test]"
"$VPY" -m pip install -q -e ".$extra"
"$VPY" -c "import torch; print('setup: torch', torch.__version__, 'cuda' if torch.cuda.is_available() else 'cpu')"
