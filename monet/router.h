// MONET's router (Park et al. 2024, arXiv 2412.04139, §3 "adaptive expert routing").
//
// Two sub-routers see the whole input x ∈ R^d:
//   z1 = W1 x,  z2 = W2 x,   W ∈ R^{H√N × d}, row h·√N + i  → reshaped to (B, T, H, √N), fp32
//   n  = BatchNorm(z) without affine parameters, one mean/variance per head h, pooled over every
//        token and all √N logits (running statistics at inference). n only builds the mask:
//   σ  = Φ⁻¹(1 − k/√N),  τ = min(max_i n_i, σ)  per (token, head),  keep expert i iff n_i ≥ τ
//   ĝ  = softmax over the kept entries of the RAW logits z (others −1e10, as the authors' code)
// So each (token, head) keeps ≥ 1 expert, ≈ k on average, and gradients reach W only through z.
// Composed expert (i, j) has score ĝ_hij = ĝ1_hi · ĝ2_hj and flat index i·√N + j.
#pragma once
#include "core/tensor.h"

namespace monet::moe {

// Routing probabilities of one routing group: g1, g2 of shape [B, T, H, √N].
struct Routing {
  Tensor g1, g2;
};

// σ = Φ⁻¹(1 − k/√N), the BatchNorm-space threshold that keeps k of √N on Gaussian logits.
double routing_threshold(int64_t k, int64_t sqrt_n);

// Errors (naming `op`) unless g1 and g2 are [B, T, H, √N] of one shape, matching x's B and T.
void check_routing(const char* op, const Routing& r, const Tensor& x, int64_t sqrt_n);

// One sub-router's probabilities from its logits z [B, T, H, √N]. The running statistics (shape
// [H]) are updated in place in training (momentum 0.1, as torch.nn.BatchNorm1d).
Tensor adaptive_routing(const Tensor& z, const Tensor& running_mean, const Tensor& running_var,
                        bool training, double sigma);

}  // namespace monet::moe
