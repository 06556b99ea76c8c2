// Removing MONET experts exactly (Park et al. 2024, §5 "domain masking", "toxic expert purging").
//
// One composed expert (i, j) cannot be removed by zeroing ĝ1_i or ĝ2_j — that removes the √N
// experts sharing sub-expert i (or j). Instead its contribution to the layer output,
//   C_S(x) = Σ_{(i,j) ∈ S} (Σ_h ĝ1_hi ĝ2_hj) E_ij(x),
// is computed for the removed set S alone and subtracted from the layer's output. E_ij is built
// only for the pairs in S (sub-expert activations are shared between pairs with the same i or j),
// so the cost grows with |S|, never with N.
//
// Whole sub-experts are removed by zeroing their routing scores (no renormalisation): that removes
// every composed expert that uses them, which is what a sub-expert mask means.
#pragma once
#include <utility>
#include <vector>

#include "monet/monet_hd.h"
#include "monet/monet_vd.h"

namespace monet::moe {

using ExpertPairs = std::vector<std::pair<int64_t, int64_t>>;  // (i, j), flat index i·√N + j

// C_S(x) for HD and VD weights; x [B, T, d] → [B, T, d].
Tensor hd_contribution(const Tensor& x, const HdWeights& w, const Routing& r, const ExpertPairs& s);
Tensor vd_contribution(const Tensor& x, const VdWeights& w, const Routing& r, const ExpertPairs& s);

// ĝ1 with the sub-experts `removed1` zeroed, ĝ2 with `removed2` zeroed.
Routing mask_subexperts(const Routing& r, const std::vector<int64_t>& removed1,
                        const std::vector<int64_t>& removed2);

}  // namespace monet::moe
