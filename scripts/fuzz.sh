#!/usr/bin/env bash
# Fuzzes each loader (fuzz/fuzz_*.cpp: safetensors, the config with --set overrides, state.json)
# with the seeded, coverage-guided mutation loop of fuzz/mutate_main.cpp over its committed corpus
# (fuzz/corpus/<loader>/), built with AddressSanitizer + UndefinedBehaviorSanitizer in build-asan/,
# MONET_JOBS loaders at a time (all cores by default).
# A finding (an exception other than monet::Error, a failed round trip, a sanitizer report, a
# crash, a run over 20 s) fails the run and leaves the input in build-asan/fuzz/findings/;
# replay it with `build-asan/fuzz/fuzz_<loader> --seconds 0 FILE`.
#   MONET_FUZZ_SECONDS  seconds per loader (60)
#   MONET_FUZZ_SEED     the mutation loop's seed (1): a run is reproducible from it and the corpus
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/asan_env.sh
cmake --build build-asan -j"$MONET_JOBS" --target fuzz_safetensors fuzz_config fuzz_state
mkdir -p build-asan/fuzz/findings
export MONET_FUZZ_SECONDS=${MONET_FUZZ_SECONDS:-60} MONET_FUZZ_SEED=${MONET_FUZZ_SEED:-1}
# xargs fails (non-zero) when any of them does.
printf '%s\n' safetensors config state |
  xargs -P "$MONET_JOBS" -I LOADER bash -c 'exec build-asan/fuzz/fuzz_$0 \
    --seconds "$MONET_FUZZ_SECONDS" --seed "$MONET_FUZZ_SEED" \
    --artifacts build-asan/fuzz/findings fuzz/corpus/$0' LOADER
