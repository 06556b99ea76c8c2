// causal_softmax: the row operation at the heart of causal attention, fused. For scores S
// [..., T, Tk] whose query row i sits at absolute position (Tk − T) + i:
//   P_ij = softmax_j(scale · S_ij)  over the keys j ≤ (Tk − T) + i,   P_ij = 0 for later keys.
// One pass per row replaces scale, mask construction, masked_fill and softmax (and their four
// backward passes); the masked part of a row is never exponentiated.
// Backward: dS_ij = scale · P_ij (g_ij − Σ_j' g_ij' P_ij'), zero where masked since P is.
//
// rotary: RoPE (Su et al. 2021, arXiv 2104.09864) in the rotate-half layout, fused. For a row x at
// position t with halves x₁, x₂: y₁ = x₁cos_t − x₂sin_t, y₂ = x₂cos_t + x₁sin_t — a rotation by
// angle θ_t per pair, so the backward is the rotation by −θ_t: dx = rotary(g, cos, −sin). The input
// may be a strided view (the heads of q, k are a transpose of the projections): it is read in place
// and the output is contiguous, which the attention matmuls want.
#include <cmath>

#include "core/cpu/loops.h"
#include "core/cpu/parallel.h"
#include "core/cpu/rows.h"
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
    cpu::parallel_for(rows, cpu::kRowGrain / std::max<int64_t>(Tk, 1), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const T *pi = pp + r * Tk, *gi = pg + r * Tk;
        double dot = 0;
        for (int64_t j = 0; j < Tk; ++j) dot += static_cast<double>(gi[j]) * pi[j];
        for (int64_t j = 0; j < Tk; ++j)
          pd[r * Tk + j] = static_cast<T>(scale * pi[j] * (gi[j] - dot));
      }
    });
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

Tensor rotary(const Tensor& x, const Tensor& cos, const Tensor& sin) {
  const int64_t hd = x.dim() >= 2 ? x.size(-1) : 0, half = hd / 2,
                T = x.dim() >= 2 ? x.size(-2) : 0;
  MONET_CHECK(
      x.dim() >= 2 && hd % 2 == 0 && cos.shape() == (Shape{T, half}) && sin.shape() == cos.shape(),
      "rotary: input {} needs [..., T, hd] with hd even and cos / sin [T, hd/2], got {} / {}",
      shape_str(x.shape()), shape_str(cos.shape()), shape_str(sin.shape()));
  MONET_CHECK(!cos.requires_grad() && !sin.requires_grad(),
              "rotary: cos and sin are constant tables (no gradient flows into them)");
  check_same_device("rotary", x, cos);
  check_same_device("rotary", x, sin);
  const int64_t rows = x.numel() / std::max<int64_t>(hd, 1);
  Tensor c = cos.to(x.dtype()).contiguous(), s = sin.to(x.dtype()).contiguous();
  Tensor y = empty(x.shape(), x.dtype(), x.device());
  flops::count(3 * x.numel());
#ifdef MONET_WITH_CUDA
  if (x.device().is_cuda()) {
    cuda::check_dtype("rotary", x);
    Tensor xc = x.detach().contiguous();
    cuda::rotary(xc.data<float>(), c.data<float>(), s.data<float>(), y.data<float>(), rows, T,
                 half);
  } else
#endif
  {
    check_cpu("rotary", x);
    Tensor xs = x.strides().back() == 1 ? x.detach() : x.detach().contiguous();
    // Element offset of every input row (the leading axes may be strided).
    Shape lead(xs.shape().begin(), xs.shape().end() - 1);
    std::vector<int64_t> st(xs.strides().begin(), xs.strides().end() - 1), offsets;
    offsets.reserve(static_cast<size_t>(rows));
    cpu::strided_loop<1>(lead, {st}, {0},
                         [&](const std::array<int64_t, 1>& p) { offsets.push_back(p[0]); });
    MONET_DISPATCH_FLOAT(x.dtype(), "rotary", [&] {
      using V = scalar_t;
      const V *px = xs.data<V>(), *pc = c.data<V>(), *ps = s.data<V>();
      V* py = y.data<V>();
      cpu::parallel_for(rows, cpu::kRowGrain / std::max<int64_t>(hd, 1),
                        [&](int64_t r0, int64_t r1) {
                          for (int64_t r = r0; r < r1; ++r) {
                            const V *x1 = px + offsets[r], *x2 = x1 + half,
                                    *ct = pc + (r % T) * half, *sn = ps + (r % T) * half;
                            V *y1 = py + r * hd, *y2 = y1 + half;
                            for (int64_t i = 0; i < half; ++i) {
                              y1[i] = x1[i] * ct[i] - x2[i] * sn[i];
                              y2[i] = x2[i] * ct[i] + x1[i] * sn[i];
                            }
                          }
                        });
    });
  }
  record(y, "rotary", {x}, [c, s](const Tensor& g) {
    return std::vector<Tensor>{rotary(g, c, neg(s))};  // the inverse rotation
  });
  return y;
}

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
    cpu::parallel_for(rows, cpu::kRowGrain / std::max<int64_t>(Tk, 1), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t valid = offset + r % T + 1;  // keys 0 .. offset + i
        const V* xi = px + r * Tk;
        V* pi = pp + r * Tk;
        V mx;
        const V inv = static_cast<V>(1.0 / cpu::exp_row(xi, pi, valid, static_cast<V>(scale), &mx));
        for (int64_t j = 0; j < valid; ++j) pi[j] *= inv;
        for (int64_t j = valid; j < Tk; ++j) pi[j] = V(0);
      }
    });
  });
  Tensor out = reshape(p, s.shape());
  record(out, "causal_softmax", {s}, [pd = p.detach(), scale, shape = s.shape()](const Tensor& g) {
    return std::vector<Tensor>{reshape(causal_softmax_backward(pd, g, scale), shape)};
  });
  return out;
}

}  // namespace monet
