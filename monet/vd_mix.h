// MONET-VD's per-token mixing, fused (CPU). monet_vd (monet_vd.h) writes each output half as one
// product with a stacked weight:
//   X1 = [Y11 | Y12 | G1] · [V11ᵀ ; V12ᵀ ; b1],     X2 = [Y21 | Y22 | G2] · [V21ᵀ ; V22ᵀ ; b2]
// and this op builds the left factors from the activations a1, a2 (√N rows of m = m_expert/2) and
// the routing ĝ1, ĝ2 (H rows of √N), per token:
//   s1_h = Σ_i ĝ1_hi,  s2_h = Σ_j ĝ2_hj,  G1_i = Σ_h ĝ1_hi s2_h,  G2_j = Σ_h ĝ2_hj s1_h
//   c1_h = Σ_i ĝ1_hi a1_i,  c2_h = Σ_j ĝ2_hj a2_j                      (H vectors of m)
//   Y11_i = G1_i a1_i,  Y12_i = Σ_h ĝ1_hi c2_h,  Y21_j = Σ_h ĝ2_hj c1_h,  Y22_j = G2_j a2_j
// Composed with separate ops these are a dozen small batched products, broadcasts and reductions
// per layer, forward and backward; here they are one pass per token each way, and the backward is
// the chain rule through the lines above, written out in vd_mix.cpp. The activations and the Y
// blocks are held transposed, [m, √N] (column i is sub-expert i), so every inner loop runs along
// √N: monet_vd permutes the rows of U and the columns of V to match.
#pragma once
#include "core/tensor.h"

namespace monet::moe {

// a: [..., 2·m·√N] (a1ᵀ then a2ᵀ, each [m, √N]), g1, g2: [..., H, √N] with the same leading
// axes. Returns Z [2, tokens, 2·m·√N + √N]: Z[0] = [Y11ᵀ | Y12ᵀ | G1], Z[1] = [Y21ᵀ | Y22ᵀ | G2].
// CPU only (monet_vd composes separate ops on other devices).
Tensor vd_mix(const Tensor& a, const Tensor& g1, const Tensor& g2);

}  // namespace monet::moe
