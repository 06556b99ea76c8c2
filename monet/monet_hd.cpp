#include "monet/monet_hd.h"

#include "core/ops.h"
#include "nn/linear.h"

namespace monet::moe {

Tensor monet_hd(const Tensor& x, const HdWeights& w, const Routing& r) {
  const int64_t B = x.size(0), T = x.size(1);
  const int64_t sqrt_n = w.b.size(0), m = w.u_weight.size(0) / sqrt_n;
  check_routing("monet_hd", r, x, sqrt_n);
  // a = relu²(u(x)) as (B,T,√N,m)
  Tensor a = relu2(nn::linear(x, w.u_weight, w.u_bias)).reshape({B, T, sqrt_n, m});
  Tensor z = matmul(r.g1, a);                     // z_h = Σ_i ĝ1_hi a_i        (B,T,H,m)
  Tensor y = matmul(transpose(r.g2, -1, -2), z);  // y_j = Σ_h ĝ2_hj z_h        (B,T,√N,m)
  Tensor out = nn::linear(y.reshape({B, T, sqrt_n * m}), w.v_weight);
  // Bias: Σ_ij ĝ1_hi ĝ2_hj b_j = Σ_j (Σ_h ĝ2_hj s1_h) b_j with s1_h = Σ_i ĝ1_hi. The paper (and
  // the authors' code) use s1_h = 1; keeping it costs O(H) and keeps the layer exact when routing
  // is masked without renormalising (sub-expert removal, monet/masking.h).
  Tensor s1 = unsqueeze(sum(r.g1, {3}), -1);  // (B,T,H,1)
  Tensor bias_w = matmul(transpose(r.g2, -1, -2), s1).reshape({B, T, sqrt_n});
  return add(out, matmul(bias_w, w.b));
}

}  // namespace monet::moe
