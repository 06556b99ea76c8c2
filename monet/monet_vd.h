// MONET-VD, the vertical decomposition (Park et al. 2024, Eq. 13–15, App. A.1, Alg. 2).
//
// Each expert's hidden layer is split in two halves of width m/2, from sub-expert i and j:
//   a1_i = relu²(U1_i x + b11_i),   a2_j = relu²(U2_j x + b21_j)          (each in R^{m/2})
//   E_ij(x) = [ V11_i a1_i + V12_i a2_j + b12_i ;  V21_j a1_i + V22_j a2_j + b22_j ]
// and y = Σ_h Σ_ij ĝ1_hi ĝ2_hj E_ij(x) is the concatenation (X11+X12+X13, X21+X22+X23) of
//   X11 = v11((Σ_h ĝ1_hi) a1_i)             X21 = v21(Σ_h ĝ2_hj (Σ_i ĝ1_hi a1_i))
//   X12 = v12(Σ_h ĝ1_hi (Σ_j ĝ2_hj a2_j))   X22 = v22((Σ_h ĝ2_hj) a2_j)
//   X13 = Σ_i (Σ_h ĝ1_hi) b1_i              X23 = Σ_j (Σ_h ĝ2_hj) b2_j
// where the paper writes Σ_h ĝ1_hi for Σ_h ĝ1_hi (Σ_j ĝ2_hj), using Σ_j ĝ2_hj = 1 (in X11, X13,
// and symmetrically X22, X23); the code keeps the sums so the terms stay exact for masked
// routing. u1, u2: Linear d → √N·m/2 with bias (row i·m/2 + r);
// v11, v12, v21, v22: Linear √N·m/2 → d/2 without bias; b1, b2: (√N, d/2).
// Per token: activations 2·√N·m/2, head mixtures 2·H·m/2, mixed inputs 4·√N·m/2 — never H·N.
#pragma once
#include "core/tensor.h"
#include "monet/router.h"

namespace monet::moe {

struct VdWeights {
  Tensor u1_weight, u1_bias, u2_weight, u2_bias;  // [√N·m/2, d], [√N·m/2]
  Tensor v11, v12, v21, v22;                      // [d/2, √N·m/2]
  Tensor b1, b2;                                  // [√N, d/2]
};

// x [B, T, d] → [B, T, d]. On the CPU the mixing is fused (vd_mix.h) and each half is one product;
// elsewhere the six terms above are composed from separate ops (monet_vd_composed).
Tensor monet_vd(const Tensor& x, const VdWeights& w, const Routing& r);
Tensor monet_vd_composed(const Tensor& x, const VdWeights& w, const Routing& r);

}  // namespace monet::moe
