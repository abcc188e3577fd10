#!/usr/bin/env bash
# Install cmbflow and its test tools into the current Python environment.
# --test: also Debian's chromium (the report test renders the HTML report headless), where
# apt-get can run as root; elsewhere that test is skipped with its reason.
# torch 2.13.0 is installed first when torch is absent: on CPU-only machines that takes a
# local CPU wheel, while letting pip resolve a bare `torch` pulls several GB of CUDA wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c "import torch" >/dev/null 2>&1; then
    "$PYTHON" -m pip install --quiet "torch==2.13.0"
fi
# requirements.lock (tools/lock.py): the exact versions the tests ran with, as constraints.
"$PYTHON" -m pip install --quiet --editable ".[test]" --constraint requirements.lock
if [[ "${1:-}" == "--test" ]] && ! command -v chromium >/dev/null 2>&1; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null; } \
            || echo "install.sh: could not install chromium; the report rendering test will be skipped" >&2
    else
        echo "install.sh: chromium not installed (needs root and apt-get); the report rendering test will be skipped" >&2
    fi
fi
