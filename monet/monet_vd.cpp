#include "monet/monet_vd.h"

#include "core/ops.h"

namespace monet::moe {

namespace {
Tensor linear_nobias(const Tensor& x, const Tensor& w) { return matmul(x, transpose(w, 0, 1)); }
}  // namespace

Tensor monet_vd(const Tensor& x, const VdWeights& w, const Routing& r) {
  const int64_t B = x.size(0), T = x.size(1);
  const int64_t sqrt_n = w.b1.size(0), half_m = w.u1_weight.size(0) / sqrt_n;
  MONET_CHECK(r.g1.dim() == 4 && r.g1.size(-1) == sqrt_n && r.g1.shape() == r.g2.shape(),
              "monet_vd: routing {} / {} does not match sqrt(N) = {}", shape_str(r.g1.shape()),
              shape_str(r.g2.shape()), sqrt_n);
  const Shape experts{B, T, sqrt_n, half_m}, flat{B, T, sqrt_n * half_m};
  Tensor a1 = relu2(add(linear_nobias(x, w.u1_weight), w.u1_bias)).reshape(experts);
  Tensor a2 = relu2(add(linear_nobias(x, w.u2_weight), w.u2_bias)).reshape(experts);
  Tensor g1t = transpose(r.g1, -1, -2), g2t = transpose(r.g2, -1, -2);  // (B,T,√N,H)
  Tensor G1 = sum(r.g1, {2}), G2 = sum(r.g2, {2});                     // Σ_h ĝ, (B,T,√N)

  Tensor X11 = linear_nobias(mul(unsqueeze(G1, -1), a1).reshape(flat), w.v11);
  Tensor X12 = linear_nobias(matmul(g1t, matmul(r.g2, a2)).reshape(flat), w.v12);
  Tensor X13 = matmul(G1, w.b1);
  Tensor X21 = linear_nobias(matmul(g2t, matmul(r.g1, a1)).reshape(flat), w.v21);
  Tensor X22 = linear_nobias(mul(unsqueeze(G2, -1), a2).reshape(flat), w.v22);
  Tensor X23 = matmul(G2, w.b2);
  return concat({add(add(X11, X12), X13), add(add(X21, X22), X23)}, -1);
}

}  // namespace monet::moe
