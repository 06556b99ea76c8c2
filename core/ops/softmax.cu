// CUDA twins of softmax.cpp: softmax / log-softmax of dense rows and the fused cross-entropy.
// One block per row (grid-stride over rows); the row's maximum and sum come from block reductions
// in a fixed tree, so results are deterministic.
#include "core/cuda/common.cuh"

namespace monet::cuda {
namespace {

__global__ void softmax_kernel(const float* x, float* y, int64_t m, int64_t n, bool log) {
  __shared__ float shared[32];
  for (int64_t r = blockIdx.x; r < m; r += gridDim.x) {
    const float* xi = x + r * n;
    float* yi = y + r * n;
    float mx = -CUDART_INF_F;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) mx = fmaxf(mx, xi[j]);
    mx = block_max(mx, shared);
    float s = 0.0f;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += expf(xi[j] - mx);
    s = block_sum(s, shared);
    if (log) {  // (x − m) − log s, as the CPU: exact for the largest entry even at |x| ≫ 1
      const float log_s = logf(s);
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) yi[j] = (xi[j] - mx) - log_s;
    } else {
      const float inv = 1.0f / s;
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) yi[j] = expf(xi[j] - mx) * inv;
    }
  }
}

// rows[r] = logsumexp(x_r) − x_r[t_r] and rows[m + r] = 1 for a counted row; 0 and 0 for an
// ignored row; NaN and 1 for a target out of [0, n) (the CPU throws there; see kernels.h).
__global__ void cross_entropy_rows_kernel(const float* x, const int32_t* t, int64_t m, int64_t n,
                                          int32_t ignore, float* rows) {
  __shared__ float shared[32];
  for (int64_t r = blockIdx.x; r < m; r += gridDim.x) {
    const int32_t target = t[r];  // the same for the whole block: the branches below are uniform
    if (target == ignore) {
      if (threadIdx.x == 0) rows[r] = rows[m + r] = 0.0f;
      continue;
    }
    const float* xi = x + r * n;
    float mx = -CUDART_INF_F;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) mx = fmaxf(mx, xi[j]);
    mx = block_max(mx, shared);
    float s = 0.0f;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += expf(xi[j] - mx);
    s = block_sum(s, shared);
    if (threadIdx.x == 0) {
      const bool ok = target >= 0 && target < n;
      rows[r] = ok ? mx + logf(s) - xi[target] : CUDART_NAN_F;
      rows[m + r] = 1.0f;
    }
  }
}

// One block: loss[0] = Σ rows[0, m) / max(count, 1), count[0] = Σ rows[m, 2m).
__global__ void cross_entropy_mean_kernel(const float* rows, int64_t m, float* loss, float* count) {
  __shared__ float shared[32];
  float total = 0.0f, c = 0.0f;
  for (int64_t r = threadIdx.x; r < m; r += blockDim.x) {
    total += rows[r];
    c += rows[m + r];
  }
  total = block_sum(total, shared);
  c = block_sum(c, shared);
  if (threadIdx.x == 0) {
    loss[0] = c > 0.0f ? total / c : 0.0f;
    count[0] = c;
  }
}

// dx_r = g·(softmax(x_r) − onehot(t_r)) / max(count, 1); zero on ignored rows. g and count are
// read on the device: the backward needs no host round trip.
__global__ void cross_entropy_backward_kernel(const float* x, const int32_t* t, const float* g,
                                              const float* count, int64_t m, int64_t n,
                                              int32_t ignore, float* dx) {
  __shared__ float shared[32];
  const float scale = g[0] / fmaxf(count[0], 1.0f);
  for (int64_t r = blockIdx.x; r < m; r += gridDim.x) {
    const int32_t target = t[r];
    const float* xi = x + r * n;
    float* di = dx + r * n;
    if (target == ignore) {
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) di[j] = 0.0f;
      continue;
    }
    float mx = -CUDART_INF_F;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) mx = fmaxf(mx, xi[j]);
    mx = block_max(mx, shared);
    float s = 0.0f;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += expf(xi[j] - mx);
    s = block_sum(s, shared);
    const float inv = 1.0f / s;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      float d = scale * (expf(xi[j] - mx) * inv);
      if (j == target) d -= scale;  // the thread that owns column `target` subtracts the one-hot
      di[j] = d;
    }
  }
}

}  // namespace

void softmax_rows(const float* x, float* y, int64_t m, int64_t n, bool log) {
  if (m == 0 || n == 0) return;
  softmax_kernel<<<grid_for(m, 1), row_threads(n), 0, stream()>>>(x, y, m, n, log);
  MONET_CUDA_CHECK_LAUNCH("softmax_kernel");
}

void cross_entropy_forward(const float* x, const int32_t* t, int64_t m, int64_t n, int32_t ignore,
                           float* loss, float* count, float* rows) {
  if (m > 0 && n > 0) {
    cross_entropy_rows_kernel<<<grid_for(m, 1), row_threads(n), 0, stream()>>>(x, t, m, n, ignore,
                                                                               rows);
    MONET_CUDA_CHECK_LAUNCH("cross_entropy_rows_kernel");
  } else {
    m = 0;  // no rows: the mean kernel writes loss 0, count 0
  }
  cross_entropy_mean_kernel<<<1, kThreads, 0, stream()>>>(rows, m, loss, count);
  MONET_CUDA_CHECK_LAUNCH("cross_entropy_mean_kernel");
}

void cross_entropy_backward(const float* x, const int32_t* t, const float* g, const float* count,
                            int64_t m, int64_t n, int32_t ignore, float* dx) {
  if (m == 0 || n == 0) return;
  cross_entropy_backward_kernel<<<grid_for(m, 1), row_threads(n), 0, stream()>>>(x, t, g, count, m,
                                                                                 n, ignore, dx);
  MONET_CUDA_CHECK_LAUNCH("cross_entropy_backward_kernel");
}

}  // namespace monet::cuda
