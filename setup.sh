#!/usr/bin/env bash
# One command from a fresh Debian 12 machine: install dependencies, build, and run the main job —
# train configs/tiny.json on the bundled corpus, evaluate it per domain, and sample from it.
set -euo pipefail
cd "$(dirname "$0")"
scripts/deps.sh
scripts/build.sh
# A second ./setup.sh continues the run it finds (a finished one says so) instead of overwriting it.
if [ -d runs/tiny/checkpoint ]; then
  ./build/monet train --resume runs/tiny
else
  ./build/monet train --config configs/tiny.json --out runs/tiny
fi
./build/monet eval --ckpt runs/tiny
./build/monet sample --ckpt runs/tiny --prompt "def " --tokens 200 --temperature 0.8 --top-k 40
