#!/usr/bin/env bash
# Configures (once) and builds into build/. nvcc is used when present; it is never required.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${CUDACXX:-}" ] && ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  export CUDACXX=/usr/local/cuda/bin/nvcc
fi
# A compiler cache when one is installed (CI's bare system has one, its folder kept on the host):
# it keys on the preprocessed source, so a missing header still fails the build.
launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
fi
[ -f build/CMakeCache.txt ] || cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "${launcher[@]}" ${MONET_CMAKE_ARGS:-}
cmake --build build -j"$(nproc)"
