#!/usr/bin/env bash
# Configures (once) and builds into build/. nvcc is used when present; it is never required.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${CUDACXX:-}" ] && ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  export CUDACXX=/usr/local/cuda/bin/nvcc
fi
[ -f build/CMakeCache.txt ] || cmake -S . -B build -DCMAKE_BUILD_TYPE=Release ${MONET_CMAKE_ARGS:-}
cmake --build build -j"$(nproc)"
