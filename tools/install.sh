#!/usr/bin/env bash
# Install cmbflow and its test tools into the current Python environment.
# torch 2.13.0 is installed first when torch is absent: on CPU-only machines that takes a
# local CPU wheel, while letting pip resolve a bare `torch` pulls several GB of CUDA wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c "import torch" >/dev/null 2>&1; then
    "$PYTHON" -m pip install --quiet "torch==2.13.0"
fi
"$PYTHON" -m pip install --quiet --editable ".[test]"
