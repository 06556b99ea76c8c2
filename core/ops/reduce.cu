// CUDA twins of reduce.cpp: sums over any set of axes and the row maximum with its index.
#include "core/cuda/common.cuh"

namespace monet::cuda {
namespace {

// One block per output element (grid-stride over outputs): its threads stride over the reduced
// elements, then reduce in a fixed tree, so the result does not depend on scheduling.
__global__ void sum_kernel(const float* x, float* out, Iter<1> kept, Iter<1> reduced) {
  __shared__ float shared[32];
  for (int64_t o = blockIdx.x; o < kept.numel; o += gridDim.x) {
    int64_t base[1];
    iter_offsets(kept, o, base);
    float acc = 0.0f;
    for (int64_t r = threadIdx.x; r < reduced.numel; r += blockDim.x) {
      int64_t off[1];
      iter_offsets(reduced, r, off);  // reduced.offset is 0: offsets relative to base
      acc += x[base[0] + off[0]];
    }
    acc = block_sum(acc, shared);
    if (threadIdx.x == 0) out[o] = acc;
  }
}

// One warp per row: each lane scans a strided part of the row keeping its first maximum, then the
// lanes combine (larger value, or equal value at a smaller index), as the CPU's first-max-wins.
__global__ void max_rows_kernel(const float* x, float* values, int32_t* index, int64_t m,
                                int64_t n) {
  const int lane = threadIdx.x % 32;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32; r < m;
       r += warps) {
    const float* row = x + r * n;
    float best = -CUDART_INF_F;
    int64_t at = -1;
    for (int64_t j = lane; j < n; j += 32)
      if (at < 0 || row[j] > best) {
        best = row[j];
        at = j;
      }
    for (int o = 16; o > 0; o >>= 1) {
      const float ob = __shfl_xor_sync(0xffffffffu, best, o);
      const int64_t oa = __shfl_xor_sync(0xffffffffu, at, o);
      if (oa >= 0 && (at < 0 || ob > best || (ob == best && oa < at))) {
        best = ob;
        at = oa;
      }
    }
    if (lane == 0) {
      values[r] = best;
      index[r] = static_cast<int32_t>(at);
    }
  }
}

}  // namespace

void sum(const float* x, float* out, const Iter<1>& kept, const Iter<1>& reduced) {
  if (kept.numel == 0) return;
  const int threads = row_threads(reduced.numel);
  sum_kernel<<<grid_for(kept.numel, 1), threads, 0, stream()>>>(x, out, kept, reduced);
  MONET_CUDA_CHECK_LAUNCH("sum_kernel");
}

void max_rows(const float* x, float* values, int32_t* index, int64_t m, int64_t n) {
  if (m == 0 || n == 0) return;
  constexpr int kWarpsPerBlock = kThreads / 32;
  max_rows_kernel<<<grid_for(m, kWarpsPerBlock), kThreads, 0, stream()>>>(x, values, index, m, n);
  MONET_CUDA_CHECK_LAUNCH("max_rows_kernel");
}

}  // namespace monet::cuda
