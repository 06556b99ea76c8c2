#!/usr/bin/env bash
# The CUDA backend on a real GPU, in one go (docs/guide/benchmarks.md): builds with CUDA in
# build-cuda/, runs every CUDA test (parity of the op table, the allocator, the models, the
# training loop), times the training step of dense and MONET-VD d256 on the device, and runs the
# quick √N sweep there. Everything goes to one results file, $OUT/gpu_check.md (OUT defaults to
# runs/gpu_check), with each stage's exit status; the script fails if any stage failed.
#
# Prepared to finish in under 8 minutes on one GPU with 16 cores: the build takes most of it
# (MONET_JOBS=nproc), the tests about a minute, the benches and the sweep about two.
#
#   scripts/gpu_check.sh                    # on the machine with the GPU, from the repo root
#   CUDA_ARCH=90 scripts/gpu_check.sh       # only the GPU's architecture (faster build)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu_check}
JOBS=${MONET_JOBS:-$(nproc)}
mkdir -p "$OUT"
report="$OUT/gpu_check.md"
failed=0

stage() {  # stage NAME COMMAND...: runs it, appends its output and status to the report
  local name=$1
  shift
  local start=$SECONDS
  echo "== $name: $*" >&2
  {
    echo "## $name"
    echo
    echo '```'
    echo "\$ $*"
  } >>"$report"
  "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  tail -n 60 "$OUT/$name.log" >>"$report"
  {
    echo '```'
    echo
    echo "exit status $rc, $((SECONDS - start)) s"
    echo
  } >>"$report"
  [ "$rc" -eq 0 ] || failed=1
  return 0
}

{
  echo "# monet-cpp GPU check, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo '```'
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 || echo "no nvidia-smi"
  git log -1 --format='commit %H %s' 2>/dev/null
  echo '```'
  echo
} >"$report"

arch_args=()
[ -n "${CUDA_ARCH:-}" ] && arch_args=(-DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCH")
stage configure cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release -DMONET_CUDA=ON \
  -DMONET_BENCH=OFF "${arch_args[@]}"
stage build cmake --build build-cuda -j"$JOBS" --target monet monet_tests
if grep -q "MONET_WITH_CUDA" build-cuda/CMakeFiles/monet_core.dir/flags.make 2>/dev/null; then
  # Every test with a device path; none may be skipped on a machine with a GPU.
  stage cuda_tests bash -c "cd build-cuda && ctest -j$JOBS -R 'Cuda|cuda' --output-on-failure \
    >ctest.out 2>&1; rc=\$?; cat ctest.out; if grep -q Skipped ctest.out; then
    echo 'some CUDA tests were skipped on a machine with a GPU'; exit 1; fi; exit \$rc"
  stage bench_cuda build-cuda/monet bench --config configs/bench_dense_d256.json \
    --config configs/bench_monet_vd_d256.json --set run.device=cuda --steps 10 --rounds 2
  stage table_cuda build-cuda/monet table --quick --device cuda --out "$OUT/table"
else
  echo "the build has no CUDA backend (nvcc not found?): see configure.log" >>"$report"
  failed=1
fi
echo "results: $report" >&2
exit $failed
