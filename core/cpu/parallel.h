// The CPU kernels' parallel loop. The process has one thread pool, OpenMP's, which OpenBLAS (its
// OpenMP build) shares, so a gemm and the kernels around it never run two pools on the same cores.
//
//   parallel_for(n, grain, [&](int64_t begin, int64_t end) { for (i = begin; i < end; ++i) ... });
//
// splits [0, n) into one contiguous chunk per thread when there are at least 2·grain items (below
// that, threading costs more than it saves) and runs the chunks in parallel; otherwise, and in
// builds without OpenMP, it calls f(0, n) on this thread. Chunks must write disjoint outputs. A
// reduction keeps one partial per chunk (parallel_chunks) and adds them in chunk order: the result
// is the same on every run with the same thread count.
#pragma once
#include <algorithm>
#include <cstdint>

#ifdef MONET_OPENMP
#include <omp.h>
#endif

namespace monet::cpu {

// Work per thread below which a loop stays on one thread (a few microseconds of work: less than
// waking a thread costs). Elementwise maps and copies count elements; row kernels (softmax, norms,
// attention rows) count the elements of their rows.
inline constexpr int64_t kElementGrain = 32768;
inline constexpr int64_t kRowGrain = 16384;
// At most this many chunks, so a reduction can keep its partials in a fixed array.
inline constexpr int kMaxChunks = 64;

// Threads a parallel_for over n items with this grain would use (1 without OpenMP).
inline int chunk_count(int64_t n, int64_t grain) {
#ifdef MONET_OPENMP
  if (omp_in_parallel()) return 1;
  const int64_t by_size = n / std::max<int64_t>(grain, 1);
  return static_cast<int>(
      std::clamp<int64_t>(by_size, 1, std::min<int64_t>(omp_get_max_threads(), kMaxChunks)));
#else
  (void)n, (void)grain;
  return 1;
#endif
}

// f(chunk, begin, end) for each of chunk_count(n, grain) chunks, in parallel.
template <class F>
void parallel_chunks(int64_t n, int64_t grain, F&& f) {
  const int chunks = chunk_count(n, grain);
  if (chunks <= 1) {
    if (n > 0) f(0, int64_t{0}, n);
    return;
  }
#ifdef MONET_OPENMP
#pragma omp parallel for num_threads(chunks) schedule(static, 1)
  for (int c = 0; c < chunks; ++c) f(c, n * c / chunks, n * (c + 1) / chunks);
#endif
}

// Σ over [0, n) of f(begin, end)'s partial sums, one per chunk, added in chunk order.
template <class F>
double parallel_sum(int64_t n, int64_t grain, F&& f) {
  double part[kMaxChunks] = {};
  parallel_chunks(n, grain, [&](int c, int64_t begin, int64_t end) { part[c] = f(begin, end); });
  double total = 0;
  for (double v : part) total += v;
  return total;
}

template <class F>
void parallel_for(int64_t n, int64_t grain, F&& f) {
  parallel_chunks(n, grain, [&](int, int64_t begin, int64_t end) { f(begin, end); });
}

}  // namespace monet::cpu
