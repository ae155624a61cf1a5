#!/usr/bin/env bash
# Set up .venv, download the StyleGAN-Human v2 512 model once, and generate four people.
set -euo pipefail
cd "$(dirname "$0")"
bash setup_env.sh
# Fetch the model first: offline (or on any download failure) this stops with the zoo's one-line error.
.venv/bin/python model_zoo.py download stylegan_human_v2_512 >/dev/null
exec .venv/bin/python generate.py --network=stylegan_human_v2_512 --seeds=0-3 --trunc=0.8 \
    --outdir=outputs/quickstart "$@"
