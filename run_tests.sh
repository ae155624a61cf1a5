#!/usr/bin/env bash
# The test command: set up .venv if needed, then run the whole suite.
set -euo pipefail
cd "$(dirname "$0")"
bash setup_env.sh
exec .venv/bin/python -m pytest -q "$@"
