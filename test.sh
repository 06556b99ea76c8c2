#!/usr/bin/env bash
# One command: install what is missing, build, run the whole test suite with CTest.
set -euo pipefail
cd "$(dirname "$0")"
scripts/deps.sh --test
scripts/build.sh
cd build && ctest --output-on-failure -j"$(nproc)" "$@"
