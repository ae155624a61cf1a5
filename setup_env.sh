#!/usr/bin/env bash
# Create .venv (once) and install the toolkit with its test extras into it.
# TORCH_SPEC overrides the torch requirement (default: the CPU build torch==2.13.0);
# install a CUDA build of torch into .venv first to keep it (see README).
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
py=.venv/bin/python
if ! "$py" -c 'import torch' 2>/dev/null; then
    "$py" -m pip install --quiet "${TORCH_SPEC:-torch==2.13.0}"
fi
"$py" -m pip install --quiet -e '.[test]'
