#!/usr/bin/env bash
# Set up .venv, download the StyleGAN-Human v2 512 model once, and generate four people.
set -euo pipefail
cd "$(dirname "$0")"
bash setup_env.sh
exec .venv/bin/python generate.py --network=stylegan_human_v2_512 --seeds=0-3 --trunc=0.8 \
    --outdir=outputs/quickstart "$@"
