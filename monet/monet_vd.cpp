#include "monet/monet_vd.h"

#include "core/kernel_path.h"
#include "core/ops.h"
#include "monet/vd_mix.h"
#include "nn/linear.h"

namespace monet::moe {

Tensor monet_vd_composed(const Tensor& x, const VdWeights& w, const Routing& r) {
  const int64_t B = x.size(0), T = x.size(1);
  const int64_t sqrt_n = w.b1.size(0), half_m = w.u1_weight.size(0) / sqrt_n;
  check_routing("monet_vd", r, x, sqrt_n);
  const Shape experts{B, T, sqrt_n, half_m}, flat{B, T, sqrt_n * half_m};
  Tensor a1 = relu2(nn::linear(x, w.u1_weight, w.u1_bias)).reshape(experts);
  Tensor a2 = relu2(nn::linear(x, w.u2_weight, w.u2_bias)).reshape(experts);
  Tensor g1t = transpose(r.g1, -1, -2), g2t = transpose(r.g2, -1, -2);  // (B,T,√N,H)
  // G1_i = Σ_h ĝ1_hi s2_h and G2_j = Σ_h ĝ2_hj s1_h, with s1_h = Σ_i ĝ1_hi, s2_h = Σ_j ĝ2_hj. The
  // paper takes s = 1 (true for the router's probabilities); keeping it costs O(H) and keeps the
  // six terms exact for masked routing (sub-expert removal).
  Tensor s1 = unsqueeze(sum(r.g1, {3}), -1), s2 = unsqueeze(sum(r.g2, {3}), -1);  // (B,T,H,1)
  Tensor G1 = matmul(g1t, s2).reshape({B, T, sqrt_n}), G2 = matmul(g2t, s1).reshape({B, T, sqrt_n});

  Tensor X11 = nn::linear(mul(unsqueeze(G1, -1), a1).reshape(flat), w.v11);
  Tensor X12 = nn::linear(matmul(g1t, matmul(r.g2, a2)).reshape(flat), w.v12);
  Tensor X13 = matmul(G1, w.b1);
  Tensor X21 = nn::linear(matmul(g2t, matmul(r.g1, a1)).reshape(flat), w.v21);
  Tensor X22 = nn::linear(mul(unsqueeze(G2, -1), a2).reshape(flat), w.v22);
  Tensor X23 = matmul(G2, w.b2);
  return concat({add(add(X11, X12), X13), add(add(X21, X22), X23)}, -1);
}

Tensor monet_vd(const Tensor& x, const VdWeights& w, const Routing& r) {
  if (!use_fused_kernel(x.device())) return monet_vd_composed(x, w, r);
  const int64_t B = x.size(0), T = x.size(1), d = x.size(2), sqrt_n = w.b1.size(0);
  check_routing("monet_vd", r, x, sqrt_n);
  // The same six terms as two products (vd_mix.h): a = [a1ᵀ | a2ᵀ] from one projection, Z from
  // the fused mixing, then X1 = Z[0]·[V11ᵀ; V12ᵀ; b1] and X2 = Z[1]·[V21ᵀ; V22ᵀ; b2] as one batched
  // matmul. vd_mix holds a1 and the Y blocks as [m, √N], so the rows of U and of Vᵀ (sub-expert i,
  // unit r at i·m + r) are reordered to r·√N + i: copies of the weights, about a token's worth.
  const int64_t m = w.u1_weight.size(0) / sqrt_n;
  auto by_unit = [&](const Tensor& rows) {  // [√N·m, ...] rows i·m + r → r·√N + i
    Shape s = rows.shape(), split = s;
    split[0] = m;
    split.insert(split.begin(), sqrt_n);
    return reshape(transpose(reshape(rows, split), 0, 1), s);
  };
  Tensor a = relu2(nn::linear(x, concat({by_unit(w.u1_weight), by_unit(w.u2_weight)}, 0),
                              concat({by_unit(w.u1_bias), by_unit(w.u2_bias)}, 0)));
  Tensor z = vd_mix(a, r.g1, r.g2);  // [2, B·T, 2·m·√N + √N]
  auto stacked = [&](const Tensor& va, const Tensor& vb, const Tensor& b) {
    return unsqueeze(concat({by_unit(transpose(va, 0, 1)), by_unit(transpose(vb, 0, 1)), b}, 0), 0);
  };
  Tensor v = concat({stacked(w.v11, w.v12, w.b1), stacked(w.v21, w.v22, w.b2)}, 0);
  Tensor y = matmul(z, v);  // [2, B·T, d/2]: X1 and X2
  return reshape(transpose(y, 0, 1), {B, T, d});
}

}  // namespace monet::moe
