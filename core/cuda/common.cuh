// Device-side helpers shared by the .cu files: strided offsets, the grid-stride loop, and block
// reductions. Device code only (included by .cu files).
#pragma once
#include <cuda_runtime.h>
#include <math_constants.h>

#include <cstdint>

#include "core/cuda/device.h"
#include "core/cuda/kernels.h"

namespace monet::cuda {

constexpr int kThreads = 256;  // block size of the elementwise and row kernels

// Grid-stride loop over [0, n): correct for any grid size (grid_for caps the grid).
#define MONET_CUDA_LOOP(i, n)                                                            \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)

// Element offsets of the K operands at row-major linear index `linear` of the iteration.
template <int K>
__device__ __forceinline__ void iter_offsets(const Iter<K>& it, int64_t linear, int64_t (&off)[K]) {
  for (int k = 0; k < K; ++k) off[k] = it.offset[k];
  for (int d = it.ndim - 1; d > 0; --d) {  // innermost axis first; axis 0 takes what is left
    const int64_t i = linear % it.shape[d];
    linear /= it.shape[d];
    for (int k = 0; k < K; ++k) off[k] += i * it.stride[k][d];
  }
  if (it.ndim > 0)
    for (int k = 0; k < K; ++k) off[k] += linear * it.stride[k][0];
}

// Sum / max of one value per thread over the whole block; every thread gets the result.
// `shared` must hold 32 floats. blockDim.x must be a multiple of 32 (all launches use 32..1024).
__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float block_sum(float v, float* shared) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = warp_sum(v);
  __syncthreads();  // `shared` may still be read by a previous reduction
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < warps ? shared[lane] : 0.0f;
  return warp_sum(v);
}
__device__ __forceinline__ float block_max(float v, float* shared) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < warps ? shared[lane] : -CUDART_INF_F;
  return warp_max(v);
}

// Threads for a kernel with one block per row of n elements: a power of two in [32, 256].
inline int row_threads(int64_t n) {
  int t = 32;
  while (t < kThreads && t < n) t *= 2;
  return t;
}

}  // namespace monet::cuda
