// CUDA twins of index.cpp. Selections read one element per thread; the scatters are written as
// gathers over their destination (each output element is owned by one thread and adds its sources
// in index order), so they are deterministic and need no atomics. Out-of-range indices never touch
// memory out of bounds (see kernels.h for what they produce).
#include "core/cuda/common.cuh"

namespace monet::cuda {
namespace {

template <class T>
__device__ __forceinline__ T bad_index_value() {
  return T(0);
}
template <>
__device__ __forceinline__ float bad_index_value<float>() {
  return CUDART_NAN_F;
}

// out[o, i, j] = x[o, idx[i], j], one thread per output element.
template <class T>
__global__ void index_select_kernel(const T* x, const int32_t* idx, T* out, int64_t outer,
                                    int64_t A, int64_t n, int64_t inner) {
  MONET_CUDA_LOOP(e, outer * n * inner) {
    const int64_t j = e % inner, t = e / inner, i = t % n, o = t / n;
    const int64_t k = idx[i];
    out[e] = (k >= 0 && k < A) ? x[(o * A + k) * inner + j] : bad_index_value<T>();
  }
}

// One block per destination row (o, a). The block scans the indices kThreads at a time, compacts
// the positions i with idx[i] == a in increasing order (warp ballots + a prefix over the warps),
// then adds those source rows; thread t owns columns t, t + kThreads, ... of the row, so every
// output element is written by one thread, in index order: the CPU's order, no atomics.
__global__ void index_add_kernel(float* out, const float* src, const int32_t* idx, int64_t outer,
                                 int64_t A, int64_t n, int64_t inner) {
  __shared__ int64_t hits[kThreads];
  __shared__ int warp_hits[kThreads / 32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int64_t row = blockIdx.x; row < outer * A; row += gridDim.x) {
    const int64_t o = row / A, a = row % A;
    float* dst = out + row * inner;
    for (int64_t base = 0; base < n; base += kThreads) {
      const int64_t i = base + threadIdx.x;
      const bool hit = i < n && idx[i] == a;
      const unsigned mask = __ballot_sync(0xffffffffu, hit);
      if (lane == 0) warp_hits[warp] = __popc(mask);
      __syncthreads();
      int before = 0, total = 0;
      for (int w = 0; w < kThreads / 32; ++w) {
        if (w < warp) before += warp_hits[w];
        total += warp_hits[w];
      }
      if (hit) hits[before + __popc(mask & ((1u << lane) - 1u))] = i;
      __syncthreads();
      for (int h = 0; h < total; ++h) {
        const float* s = src + (o * n + hits[h]) * inner;
        for (int64_t j = threadIdx.x; j < inner; j += kThreads) dst[j] += s[j];
      }
      __syncthreads();  // hits and warp_hits are rewritten by the next chunk
    }
  }
}

// out[it 0] = a[it 2 + idx[it 1]·step].
template <class T>
__global__ void gather_kernel(T* out, const int32_t* idx, const T* a, Iter<3> it, int64_t step,
                              int64_t A) {
  MONET_CUDA_LOOP(e, it.numel) {
    int64_t off[3];
    iter_offsets(it, e, off);
    const int64_t k = idx[off[1]];
    out[off[0]] = (k >= 0 && k < A) ? a[off[2] + k * step] : bad_index_value<T>();
  }
}

// One thread per element of the dense output: it finds the index positions along `axis` that
// point at it (same coordinates elsewhere) and adds their sources in order.
__global__ void scatter_add_kernel(float* out, const int32_t* idx, const float* src,
                                   ScatterArgs s) {
  MONET_CUDA_LOOP(e, s.out_numel) {
    int64_t rest = e, k = 0, ioff = s.index_offset, soff = s.src_offset;
    bool inside = true;
    for (int d = s.ndim - 1; d >= 0; --d) {
      const int64_t c = rest % s.out_shape[d];
      rest /= s.out_shape[d];
      if (d == s.axis) {
        k = c;
      } else {
        inside = inside && c < s.index_shape[d];
        ioff += c * s.index_stride[d];
        soff += c * s.src_stride[d];
      }
    }
    if (!inside) continue;
    float acc = out[e];
    for (int64_t i = 0; i < s.index_shape[s.axis]; ++i)
      if (idx[ioff + i * s.index_stride[s.axis]] == k) acc += src[soff + i * s.src_stride[s.axis]];
    out[e] = acc;
  }
}

// (v, i) comes before (w, j) in top-k order: larger value first, ties to the smaller index.
__device__ __forceinline__ bool before(float v, int64_t i, float w, int64_t j) {
  return v > w || (v == w && i < j);
}

// One warp per row, k rounds: each round every lane finds, among its elements (j ≡ lane mod 32)
// that come after the previous pick, the first in top-k order; the warp then combines the lanes.
__global__ void topk_kernel(const float* x, float* values, int32_t* index, int64_t m, int64_t n,
                            int64_t k) {
  const int lane = threadIdx.x % 32;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32; r < m;
       r += warps) {
    const float* row = x + r * n;
    float pv = 0.0f;
    int64_t pi = -1;  // the previous pick; -1 before the first round
    for (int64_t q = 0; q < k; ++q) {
      float bv = 0.0f;
      int64_t bi = -1;
      for (int64_t j = lane; j < n; j += 32) {
        const float v = row[j];
        if (pi >= 0 && !before(pv, pi, v, j)) continue;  // already picked
        if (bi < 0 || before(v, j, bv, bi)) {
          bv = v;
          bi = j;
        }
      }
      for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
        const int64_t oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (oi >= 0 && (bi < 0 || before(ov, oi, bv, bi))) {
          bv = ov;
          bi = oi;
        }
      }
      if (lane == 0) {
        values[r * k + q] = bv;
        index[r * k + q] = static_cast<int32_t>(bi);
      }
      pv = bv;
      pi = bi;
    }
  }
}

template <class T>
void launch_index_select(const void* x, const int32_t* idx, void* out, int64_t outer, int64_t A,
                         int64_t n, int64_t inner) {
  index_select_kernel<T><<<grid_for(outer * n * inner, kThreads), kThreads, 0, stream()>>>(
      static_cast<const T*>(x), idx, static_cast<T*>(out), outer, A, n, inner);
  MONET_CUDA_CHECK_LAUNCH("index_select_kernel");
}

template <class T>
void launch_gather(void* out, const int32_t* idx, const void* a, const Iter<3>& it, int64_t step,
                   int64_t A) {
  gather_kernel<T><<<grid_for(it.numel, kThreads), kThreads, 0, stream()>>>(
      static_cast<T*>(out), idx, static_cast<const T*>(a), it, step, A);
  MONET_CUDA_CHECK_LAUNCH("gather_kernel");
}

}  // namespace

void index_select(DType t, const void* x, const int32_t* idx, void* out, int64_t outer, int64_t A,
                  int64_t n, int64_t inner) {
  if (outer * n * inner == 0) return;
  if (t == DType::I32) return launch_index_select<int32_t>(x, idx, out, outer, A, n, inner);
  launch_index_select<float>(x, idx, out, outer, A, n, inner);
}

void index_add(float* out, const float* src, const int32_t* idx, int64_t outer, int64_t A,
               int64_t n, int64_t inner) {
  if (outer * A * inner == 0 || n == 0) return;
  index_add_kernel<<<grid_for(outer * A, 1), kThreads, 0, stream()>>>(out, src, idx, outer, A, n,
                                                                      inner);
  MONET_CUDA_CHECK_LAUNCH("index_add_kernel");
}

void gather(DType t, void* out, const int32_t* idx, const void* a, const Iter<3>& it, int64_t step,
            int64_t A) {
  if (it.numel == 0) return;
  if (t == DType::I32) return launch_gather<int32_t>(out, idx, a, it, step, A);
  launch_gather<float>(out, idx, a, it, step, A);
}

void scatter_add(float* out, const int32_t* idx, const float* src, const ScatterArgs& args) {
  if (args.out_numel == 0) return;
  scatter_add_kernel<<<grid_for(args.out_numel, kThreads), kThreads, 0, stream()>>>(out, idx, src,
                                                                                    args);
  MONET_CUDA_CHECK_LAUNCH("scatter_add_kernel");
}

void topk(const float* x, float* values, int32_t* index, int64_t m, int64_t n, int64_t k) {
  if (m == 0 || k == 0) return;
  topk_kernel<<<grid_for(m, kThreads / 32), kThreads, 0, stream()>>>(x, values, index, m, n, k);
  MONET_CUDA_CHECK_LAUNCH("topk_kernel");
}

}  // namespace monet::cuda
