// Token dispatch for sparse mixtures of experts: route rows of x to their experts, run the experts,
// combine the results. Two schemes, one result when nothing is dropped:
//
//   y_t = Σ_{s<k} gates[t,s] · E_{idx[t,s]}(x_t),      E_i(x) = V_i σ(U_i x)       (Shazeer Eq. 1)
//
// with U = w1 [E, m, d], V = w2 [E, d, m] (one stacked tensor per matrix), σ = relu² or gelu.
//
// Dropless (MegaBlocks, Gale et al. 2022, arXiv 2211.15841): the (token, slot) pairs are
// counting-sorted by expert — histogram, exclusive prefix sum, stable scatter, on the host (the
// counts are the one host round trip) — the rows are gathered in expert order, and each expert
// runs ONE gemm over its contiguous rows (grouped_linear: the block-diagonal product, one block per
// expert). The combine un-permutes and adds the k slots of each token in slot order, scaled by the
// gates: a fixed-order sum, so the result is deterministic (no atomics anywhere, backward
// included).
//
// Capacity (GShard, Lepikhin et al. 2020, arXiv 2006.16668, Alg. 1; Switch, Fedus et al. 2021,
// arXiv 2101.03961, §2.2): every expert gets a buffer of C = ⌈tokens·k·CF / E⌉ rows. A pair's
// position is the exclusive count of earlier pairs assigned to the same expert, in slot-major
// order (all first choices, then all second choices, tokens in order inside a slot); a pair whose
// position is ≥ C is dropped: it contributes 0 and the token passes through the residual. The
// buffers [E, C, d] run as one batched gemm per weight (unused rows are zeros).
//
// Both take idx [n, k] int32 with entries in [0, E) or −1 ("no expert": contributes 0, used for
// masked experts) and gates [n, k]; both backpropagate into x, gates, w1 and w2.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "nn/mlp.h"

namespace monet::moe {

// The stacked expert weights: U_i = w1[i] [m, d], V_i = w2[i] [d, m].
struct ExpertWeights {
  Tensor w1;  // [E, m, d]
  Tensor w2;  // [E, d, m]
};

// The counting sort of (token, slot) pairs by expert. Pair p = t·k + s. Pairs with idx < 0 are
// left out, so rows() ≤ n·k.
struct ExpertSort {
  std::vector<int64_t> counts;   // [E]  pairs per expert (the histogram)
  std::vector<int64_t> offsets;  // [E + 1] exclusive prefix sum: expert e owns rows [o_e, o_e+1)
  std::vector<int32_t> order;    // [rows]  sorted row → pair p, stable (p increasing per expert)
  std::vector<int32_t> row;      // [n·k]   pair p → its sorted row, −1 when idx < 0
  int64_t rows() const { return offsets.back(); }
};
ExpertSort sort_by_expert(const std::vector<int32_t>& idx, int64_t experts);

// Where each pair lands in the capacity buffers. position[p] is the slot-major exclusive count
// (−1 when idx < 0); a pair is kept iff 0 ≤ position < capacity.
struct CapacityPlan {
  int64_t capacity = 0;           // C
  std::vector<int32_t> position;  // [n·k]
  std::vector<int64_t> counts;    // [E] pairs routed to each expert (kept or not)
  int64_t assigned = 0, dropped = 0;
};
// C = ⌈tokens·k·CF / E⌉ (at least 1).
int64_t expert_capacity(int64_t tokens, int64_t k, double capacity_factor, int64_t experts);
CapacityPlan plan_capacity(const std::vector<int32_t>& idx, int64_t n, int64_t k, int64_t experts,
                           int64_t capacity);

// What one dispatch did, for logs.
struct DispatchStats {
  int64_t capacity = 0;         // C; 0 for dropless
  int64_t assigned = 0;         // pairs with an expert (idx ≥ 0)
  int64_t dropped = 0;          // pairs over capacity
  int64_t dropped_tokens = 0;   // tokens all of whose assigned pairs were dropped
  std::vector<int64_t> counts;  // [E] pairs routed to each expert, before dropping
};

// x [n, d], idx [n, k] int32, gates [n, k] → y [n, d]. `act` is ReLU2 or GELU.
Tensor moe_dropless(const Tensor& x, const Tensor& idx, const Tensor& gates, const ExpertWeights& w,
                    nn::Activation act, DispatchStats* stats = nullptr);
Tensor moe_capacity(const Tensor& x, const Tensor& idx, const Tensor& gates, const ExpertWeights& w,
                    nn::Activation act, double capacity_factor, DispatchStats* stats = nullptr);

// ---- pieces of the dropless dispatch that the expert-parallel one (expert_parallel.h) shares ----

// idx on the host (the one host round trip of a dispatch), every entry checked to be in [−1, E).
std::vector<int32_t> host_expert_indices(const Tensor& idx, int64_t experts, const char* op);
// The rows of x in the sort's order: row r is x[order[r] / k]. [rows, d]
Tensor gather_sorted(const Tensor& x, const ExpertSort& s, int64_t k);
// y_t = Σ_{s<k} gates[t,s] · rows[where[t·k + s]] (0 where where = −1), the slots added in order.
Tensor combine_slots(const Tensor& rows, const std::vector<int32_t>& where, const Tensor& gates,
                     int64_t n, int64_t k);
// Fills *stats (when not null) from the routing idx and where each pair landed (−1: nowhere).
void fill_dispatch_stats(DispatchStats* stats, const std::vector<int32_t>& idx,
                         const std::vector<int32_t>& where, int64_t n, int64_t k, int64_t experts,
                         int64_t capacity);

// ---- custom autograd ops (core has no counterpart) ----

// Grouped linear, the grouped gemm of MegaBlocks: x [R, in] with rows sorted by group,
// w [G, out, in], offsets [G + 1] (offsets[G] = R) → y [R, out], y_r = W_g x_r for r in group g.
// Forward: one matmul per non-empty group on slices. Backward: dX_g = dY_g W_g, dW_g = dY_gᵀ X_g
// (0 for an empty group). Runs matmul and copy_, so it works on every backend.
Tensor grouped_linear(const Tensor& x, const Tensor& w, const std::vector<int64_t>& offsets);

// Φ(z), the standard normal CDF, elementwise (0.5·erfc(−z/√2) on the host; a CUDA input makes a
// host round trip). Backward: dΦ/dz = φ(z) = exp(−z²/2)/√(2π), written with exp.
Tensor std_normal_cdf(const Tensor& z);

}  // namespace monet::moe
