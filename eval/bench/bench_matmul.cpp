// sgemm through the library's matmul op (OpenBLAS underneath), reported in GFLOP/s.
//   build/eval/bench/bench_matmul --benchmark_filter=Square
// Set OPENBLAS_NUM_THREADS to choose the thread count (this machine: 2 cores).
#include <benchmark/benchmark.h>
#include <cblas.h>

#include "core/ops.h"
#include "core/random.h"

using namespace monet;

static void run(benchmark::State& st, Tensor a, Tensor b) {
  const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  for (auto _ : st) {
    Tensor c = matmul(a, b);
    benchmark::DoNotOptimize(c.data<float>());
  }
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * M * N * K, benchmark::Counter::kIsIterationInvariantRate,
                                              benchmark::Counter::kIs1000);
  st.counters["threads"] = openblas_get_num_threads();
}

// C = A·B, square.
static void BM_MatmulSquare(benchmark::State& st) {
  const int64_t n = st.range(0);
  Generator g(1);
  run(st, randn({n, n}, g), randn({n, n}, g));
}
BENCHMARK(BM_MatmulSquare)->Arg(256)->Arg(512)->Arg(1024)->Arg(2048)->UseRealTime();

// C = A·Bᵀ with Bᵀ a transposed view (the Linear layer's x·Wᵀ): must be as fast as the plain case.
static void BM_MatmulTransposedB(benchmark::State& st) {
  const int64_t n = st.range(0);
  Generator g(2);
  run(st, randn({n, n}, g), randn({n, n}, g).transpose(0, 1));
}
BENCHMARK(BM_MatmulTransposedB)->Arg(1024)->UseRealTime();

BENCHMARK_MAIN();
