# Sourced by scripts/sanitize.sh and scripts/fuzz.sh: configures build-asan/ and sets the
# sanitizers' run-time options. build-asan/ is the whole project with AddressSanitizer and
# UndefinedBehaviorSanitizer (CMake option MONET_SANITIZE; CUDA, MPI and the benchmarks off: Open
# MPI's own allocations would be reported as leaks), plus the fuzz targets (MONET_FUZZ).
MONET_JOBS=${MONET_JOBS:-$(nproc)}
# The compiler cache when there is one (as scripts/build.sh): CI's bare system keeps it between runs.
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DMONET_SANITIZE=ON -DMONET_CUDA=OFF \
  -DMONET_BENCH=OFF -DMONET_FUZZ=ON -DMONET_MPI=OFF "${launcher[@]}"
# Any report ends the process with a non-zero status (abort_on_error: a core-dump-free SIGABRT
# that CTest and the fuzz loop count as a failure). Leaks are checked at exit, with no
# suppressions: libgomp and OpenBLAS report none. check_initialization_order: a global read
# before its constructor ran is a report too.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:disable_coredump=1:check_initialization_order=1:strict_init_order=1"
# GCC links UBSan's runtime apart from ASan's, with options of its own: abort_on_error again, so
# that undefined behaviour ends in the same SIGABRT (which the fuzz loop catches to save the input).
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:abort_on_error=1"
