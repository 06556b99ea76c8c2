// CUDA twins of norm.cpp's fused RMSNorm / LayerNorm (see there for the formulas). Forward and the
// dx part of backward: one block per row. dγ and dβ are column sums over rows, done in two
// deterministic stages (no atomics): partial sums over chunks of kNormChunkRows rows, then a sum
// of the chunks per column in chunk order.
#include "core/cuda/common.cuh"

namespace monet::cuda {
namespace {

__global__ void norm_forward_kernel(const float* x, const float* w, const float* b, float* y,
                                    float* mean, float* rstd, int64_t m, int64_t n, float eps,
                                    bool centre) {
  __shared__ float shared[32];
  for (int64_t r = blockIdx.x; r < m; r += gridDim.x) {
    const float* xi = x + r * n;
    float mu = 0.0f;
    if (centre) {
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) mu += xi[j];
      mu = block_sum(mu, shared) / static_cast<float>(n);
    }
    float ss = 0.0f;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) ss += (xi[j] - mu) * (xi[j] - mu);
    ss = block_sum(ss, shared);
    const float rs = 1.0f / sqrtf(ss / static_cast<float>(n) + eps);
    if (threadIdx.x == 0) {
      mean[r] = mu;
      rstd[r] = rs;
    }
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
      y[r * n + j] = ((xi[j] - mu) * rs) * w[j] + (b ? b[j] : 0.0f);
  }
}

// dx = rstd·(ĝ − mean(ĝ)·[centre] − x̂·mean(ĝ⊙x̂)), ĝ = g⊙γ, x̂ = (x − μ)·rstd.
__global__ void norm_backward_dx_kernel(const float* x, const float* w, const float* g,
                                        const float* mean, const float* rstd, float* dx, int64_t m,
                                        int64_t n, bool centre) {
  __shared__ float shared[32];
  for (int64_t r = blockIdx.x; r < m; r += gridDim.x) {
    const float* xi = x + r * n;
    const float* gi = g + r * n;
    const float mu = mean[r], rs = rstd[r];
    float sum_gh = 0.0f, sum_ghx = 0.0f;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      const float gh = gi[j] * w[j];
      sum_gh += gh;
      sum_ghx += gh * ((xi[j] - mu) * rs);
    }
    const float mean_gh = centre ? block_sum(sum_gh, shared) / static_cast<float>(n) : 0.0f;
    const float mean_ghx = block_sum(sum_ghx, shared) / static_cast<float>(n);
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      const float xh = (xi[j] - mu) * rs;
      dx[r * n + j] = rs * (gi[j] * w[j] - mean_gh - xh * mean_ghx);
    }
  }
}

// Stage 1: partial[c][0][j] = Σ_{rows r of chunk c} g⊙x̂,  partial[c][1][j] = Σ g.
__global__ void norm_backward_partial_kernel(const float* x, const float* g, const float* mean,
                                             const float* rstd, float* partial, int64_t m,
                                             int64_t n, int64_t chunks) {
  for (int64_t c = blockIdx.y; c < chunks; c += gridDim.y) {
    const int64_t r0 = c * kNormChunkRows;
    const int64_t r1 = r0 + kNormChunkRows < m ? r0 + kNormChunkRows : m;
    MONET_CUDA_LOOP(j, n) {
      float aw = 0.0f, ab = 0.0f;
      for (int64_t r = r0; r < r1; ++r) {
        const float gv = g[r * n + j];
        aw += gv * ((x[r * n + j] - mean[r]) * rstd[r]);
        ab += gv;
      }
      partial[(c * 2 + 0) * n + j] = aw;
      partial[(c * 2 + 1) * n + j] = ab;
    }
  }
}

// Stage 2: dw[j] = Σ_c partial[c][0][j], db[j] = Σ_c partial[c][1][j], in chunk order.
__global__ void norm_backward_sum_kernel(const float* partial, float* dw, float* db, int64_t n,
                                         int64_t chunks) {
  MONET_CUDA_LOOP(j, n) {
    float aw = 0.0f, ab = 0.0f;
    for (int64_t c = 0; c < chunks; ++c) {
      aw += partial[(c * 2 + 0) * n + j];
      ab += partial[(c * 2 + 1) * n + j];
    }
    dw[j] = aw;
    db[j] = ab;
  }
}

}  // namespace

void norm_forward(const float* x, const float* w, const float* b, float* y, float* mean,
                  float* rstd, int64_t m, int64_t n, double eps, bool centre) {
  if (m == 0 || n == 0) return;
  norm_forward_kernel<<<grid_for(m, 1), row_threads(n), 0, stream()>>>(
      x, w, b, y, mean, rstd, m, n, static_cast<float>(eps), centre);
  MONET_CUDA_CHECK_LAUNCH("norm_forward_kernel");
}

void norm_backward(const float* x, const float* w, const float* g, const float* mean,
                   const float* rstd, float* dx, float* dw, float* db, float* partial, int64_t m,
                   int64_t n, bool centre) {
  if (n == 0) return;
  if (m > 0) {
    norm_backward_dx_kernel<<<grid_for(m, 1), row_threads(n), 0, stream()>>>(x, w, g, mean, rstd,
                                                                             dx, m, n, centre);
    MONET_CUDA_CHECK_LAUNCH("norm_backward_dx_kernel");
  }
  const int64_t chunks = norm_chunks(m);
  if (chunks > 0) {
    const dim3 grid(grid_for(n, kThreads), static_cast<unsigned>(chunks < 65535 ? chunks : 65535));
    norm_backward_partial_kernel<<<grid, kThreads, 0, stream()>>>(x, g, mean, rstd, partial, m, n,
                                                                  chunks);
    MONET_CUDA_CHECK_LAUNCH("norm_backward_partial_kernel");
  }
  norm_backward_sum_kernel<<<grid_for(n, kThreads), kThreads, 0, stream()>>>(partial, dw, db, n,
                                                                             chunks);
  MONET_CUDA_CHECK_LAUNCH("norm_backward_sum_kernel");
}

}  // namespace monet::cuda
