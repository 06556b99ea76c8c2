// CUDA twins of attention.cpp's rotary and causal_softmax. causal_softmax: one block per row of the
// scores; row r is query i = r mod T, which sees the keys j <= (Tk − T) + i. Same arithmetic as the
// CPU loop.
#include "core/cuda/common.cuh"

namespace monet::cuda {
namespace {

__global__ void causal_softmax_kernel(const float* x, float* p, int64_t rows, int64_t T, int64_t Tk,
                                      float scale) {
  __shared__ float shared[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const int64_t valid = (Tk - T) + r % T + 1;  // keys 0 .. offset + i
    const float* xi = x + r * Tk;
    float* pi = p + r * Tk;
    float mx = -CUDART_INF_F;
    for (int64_t j = threadIdx.x; j < valid; j += blockDim.x) mx = fmaxf(mx, xi[j]);
    mx = block_max(mx, shared);
    float s = 0.0f;
    for (int64_t j = threadIdx.x; j < valid; j += blockDim.x) s += expf(scale * (xi[j] - mx));
    s = block_sum(s, shared);
    const float inv = 1.0f / s;
    for (int64_t j = threadIdx.x; j < Tk; j += blockDim.x)
      pi[j] = j < valid ? expf(scale * (xi[j] - mx)) * inv : 0.0f;
  }
}

// dS = scale · P ⊙ (g − Σ_j g_j P_j), zero where masked since P is.
__global__ void causal_softmax_backward_kernel(const float* p, const float* g, float* dx,
                                               int64_t rows, int64_t Tk, float scale) {
  __shared__ float shared[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* pi = p + r * Tk;
    const float* gi = g + r * Tk;
    float dot = 0.0f;
    for (int64_t j = threadIdx.x; j < Tk; j += blockDim.x) dot += gi[j] * pi[j];
    dot = block_sum(dot, shared);
    for (int64_t j = threadIdx.x; j < Tk; j += blockDim.x)
      dx[r * Tk + j] = scale * pi[j] * (gi[j] - dot);
  }
}

// One thread per (row, i) pair of the two halves.
__global__ void rotary_kernel(const float* x, const float* c, const float* s, float* y,
                              int64_t rows, int64_t T, int64_t half) {
  MONET_CUDA_LOOP(k, rows * half) {
    const int64_t r = k / half, i = k % half, t = r % T;
    const float x1 = x[r * 2 * half + i], x2 = x[r * 2 * half + half + i];
    const float ci = c[t * half + i], si = s[t * half + i];
    y[r * 2 * half + i] = x1 * ci - x2 * si;
    y[r * 2 * half + half + i] = x2 * ci + x1 * si;
  }
}

}  // namespace

void rotary(const float* x, const float* c, const float* s, float* y, int64_t rows, int64_t T,
            int64_t half) {
  if (rows == 0 || half == 0) return;
  rotary_kernel<<<grid_for(rows * half, kThreads), kThreads, 0, stream()>>>(x, c, s, y, rows, T,
                                                                            half);
  MONET_CUDA_CHECK_LAUNCH("rotary_kernel");
}

void causal_softmax(const float* x, float* p, int64_t rows, int64_t T, int64_t Tk, double scale) {
  if (rows == 0 || Tk == 0) return;
  causal_softmax_kernel<<<grid_for(rows, 1), row_threads(Tk), 0, stream()>>>(
      x, p, rows, T, Tk, static_cast<float>(scale));
  MONET_CUDA_CHECK_LAUNCH("causal_softmax_kernel");
}

void causal_softmax_backward(const float* p, const float* g, float* dx, int64_t rows, int64_t Tk,
                             double scale) {
  if (rows == 0 || Tk == 0) return;
  causal_softmax_backward_kernel<<<grid_for(rows, 1), row_threads(Tk), 0, stream()>>>(
      p, g, dx, rows, Tk, static_cast<float>(scale));
  MONET_CUDA_CHECK_LAUNCH("causal_softmax_backward_kernel");
}

}  // namespace monet::cuda
