#!/usr/bin/env bash
# The test suite built with AddressSanitizer + UndefinedBehaviorSanitizer (CUDA off) in build-asan/
# and run with CTest: a memory error, a leak, undefined behaviour or a failed test fails the run.
# CI runs it after ./test.sh (.ci/run). Extra arguments go to ctest (-R Autograd, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/asan_env.sh
cmake --build build-asan -j"$MONET_JOBS" --target monet_tests monet
cd build-asan && ctest --output-on-failure -j"$MONET_JOBS" "$@"
