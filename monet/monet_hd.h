// MONET-HD, the horizontal decomposition (Park et al. 2024, Eq. 6–12, Alg. 1).
//
// Expert (i, j) = bottom half V_j of sub-expert j stacked after the top half U_i of sub-expert i:
//   E_ij(x) = V_j relu²(U_i x + b1_i) + b2_j,        y = Σ_h Σ_i Σ_j ĝ1_hi ĝ2_hj E_ij(x)
// Computed without building the N = √N² experts (memory-efficient form of App. A.1):
//   a   = relu²(u(x))                  (B,T,√N,m)   u: Linear d → √N·m with bias, row i·m + r
//   z_h = Σ_i ĝ1_hi a_i                (B,T,H,m)
//   y_j = Σ_h ĝ2_hj z_h                (B,T,√N,m)
//   out = v(flatten y) + Σ_j (Σ_h ĝ2_hj s1_h) b_j      v: Linear √N·m → d, no bias;  b: (√N, d)
// with s1_h = Σ_i ĝ1_hi (= 1 for the router's probabilities, as the paper assumes; kept so the
// form stays exact for masked routing).
// Per token this materialises √N·m + H·m + √N·m numbers, never H·N or N·m.
#pragma once
#include "core/tensor.h"
#include "monet/router.h"

namespace monet::moe {

struct HdWeights {
  Tensor u_weight, u_bias;  // [√N·m, d], [√N·m]
  Tensor v_weight;          // [d, √N·m]
  Tensor b;                 // [√N, d]
};

// x [B, T, d] → [B, T, d].
Tensor monet_hd(const Tensor& x, const HdWeights& w, const Routing& r);

}  // namespace monet::moe
