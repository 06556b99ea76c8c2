// causal_softmax: the row operation at the heart of causal attention, fused. For scores S
// [..., T, Tk] whose query row i sits at absolute position (Tk − T) + i:
//   P_ij = softmax_j(scale · S_ij)  over the keys j ≤ (Tk − T) + i,   P_ij = 0 for later keys.
// One pass per row replaces scale, mask construction, masked_fill and softmax (and their four
// backward passes); the masked part of a row is never exponentiated.
// Backward: dS_ij = scale · P_ij (g_ij − Σ_j' g_ij' P_ij'), zero where masked since P is.
#include <cmath>

#include "core/flops.h"
#include "core/ops/common.h"
#ifdef MONET_WITH_CUDA
#include "core/cuda/dispatch.h"
#endif

namespace monet {
using namespace detail;

namespace {

Tensor causal_softmax_backward(const Tensor& p, const Tensor& gin, double scale) {
  Tensor g = gin.contiguous(), dx = empty_like(p);
  const int64_t Tk = p.size(-1), rows = p.numel() / std::max<int64_t>(Tk, 1);
  flops::count(4 * p.numel());
  MONET_DISPATCH_FLOAT(p.dtype(), "causal_softmax", [&] {
    using T = scalar_t;
    const T *pp = p.data<T>(), *pg = g.data<T>();
    T* pd = dx.data<T>();
    for (int64_t r = 0; r < rows; ++r) {
      const T *pi = pp + r * Tk, *gi = pg + r * Tk;
      double dot = 0;
      for (int64_t j = 0; j < Tk; ++j) dot += static_cast<double>(gi[j]) * pi[j];
      for (int64_t j = 0; j < Tk; ++j) pd[r * Tk + j] = static_cast<T>(scale * pi[j] * (gi[j] - dot));
    }
  });
  return dx;
}

#ifdef MONET_WITH_CUDA
// The CUDA path (attention.cu): the same fused forward and backward, one block per row.
Tensor causal_softmax_cuda(const Tensor& s, double scale) {
  cuda::check_dtype("causal_softmax", s);
  Tensor x = s.detach().contiguous(), p = empty_like(x);
  const int64_t T = s.size(-2), Tk = s.size(-1), rows = x.numel() / std::max<int64_t>(Tk, 1);
  flops::count(5 * x.numel() / 2);
  cuda::causal_softmax(x.data<float>(), p.data<float>(), rows, T, Tk, scale);
  Tensor out = reshape(p, s.shape());
  record(out, "causal_softmax", {s},
         [pd = p.detach(), scale, rows, Tk, shape = s.shape()](const Tensor& gin) {
           cuda::check_dtype("causal_softmax backward", gin);
           Tensor g = gin.contiguous(), dx = empty_like(pd);
           flops::count(4 * pd.numel());
           cuda::causal_softmax_backward(pd.data<float>(), g.data<float>(), dx.data<float>(), rows,
                                         Tk, scale);
           return std::vector<Tensor>{reshape(dx, shape)};
         });
  return out;
}
#endif

}  // namespace

Tensor causal_softmax(const Tensor& s, double scale) {
  MONET_CHECK(s.dim() >= 2 && s.size(-1) >= s.size(-2),
              "causal_softmax: scores {} need [..., T, Tk] with Tk >= T", shape_str(s.shape()));
#ifdef MONET_WITH_CUDA
  if (s.device().is_cuda()) return causal_softmax_cuda(s, scale);
#endif
  check_cpu("causal_softmax", s);
  Tensor x = s.detach().contiguous(), p = empty_like(x);
  const int64_t T = s.size(-2), Tk = s.size(-1), offset = Tk - T;
  const int64_t rows = x.numel() / std::max<int64_t>(Tk, 1);
  flops::count(5 * x.numel() / 2);
  MONET_DISPATCH_FLOAT(s.dtype(), "causal_softmax", [&] {
    using V = scalar_t;
    const V* px = x.data<V>();
    V* pp = p.data<V>();
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t valid = offset + r % T + 1;  // keys 0 .. offset + i
      const V* xi = px + r * Tk;
      V* pi = pp + r * Tk;
      V mx = xi[0];
      for (int64_t j = 1; j < valid; ++j) mx = std::max(mx, xi[j]);
      double sum = 0;
      for (int64_t j = 0; j < valid; ++j) {
        pi[j] = std::exp(static_cast<V>(scale) * (xi[j] - mx));
        sum += pi[j];
      }
      const V inv = static_cast<V>(1.0 / sum);
      for (int64_t j = 0; j < valid; ++j) pi[j] *= inv;
      for (int64_t j = valid; j < Tk; ++j) pi[j] = V(0);
    }
  });
  Tensor out = reshape(p, s.shape());
  record(out, "causal_softmax", {s}, [pd = p.detach(), scale, shape = s.shape()](const Tensor& g) {
    return std::vector<Tensor>{reshape(causal_softmax_backward(pd, g, scale), shape)};
  });
  return out;
}

}  // namespace monet
