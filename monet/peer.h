// PEER, Parameter Efficient Expert Retrieval (He 2024, "Mixture of A Million Experts",
// arXiv 2407.04153, §2). A pool of N = √N² singleton experts shared by h retrieval heads:
//
//   I   = T_k({q(x)ᵀ k_i}_{i=1..N})            (Eq. 1, retrieve the top k experts)
//   g_i = s(q(x)ᵀ k_i),  s = softmax over I | sigmoid       (Eq. 2, router scores)
//   f(x) = Σ_{i∈I} g_i(x) e_i(x)                (Eq. 3, aggregate the expert outputs)
//
// Product keys (§2 "Product Key Retrieval", after Lample et al. 2019): k_{i·√N+j} = [c_i; c′_j]
// with sub-keys C = keys1, C′ = keys2 ∈ R^{√N × d_q/2}. The query splits as q = [q1; q2], so
//   q·k_{i·√N+j} = q1·c_i + q2·c′_j.
// The top k of q1·C and of q2·C′ give k² candidates that contain the true top k of all N (an
// expert outside either top-k list is beaten by k candidates); the top k of the k² candidates is
// Eq. 1 exactly, at a cost of O((√N + k²)·d_q) per head instead of O(N·d_q).
//
// Singleton experts (§2 "Parameter Efficient Experts"): e_i(x) = σ(u_iᵀ x) v_i, one hidden neuron,
// σ = ReLU or GELU (the paper names both). Multi-head retrieval: h query networks (one Linear
// d → h·d_q here, head-major), each retrieving its own k experts from the SAME pool and the SAME
// product keys (the paper's wording; some re-implementations give each head its own keys):
//   f(x) = Σ_{h} Σ_{j∈I_h} g_hj(x) e_j(x).
// BatchNorm on the query (the paper's "query batch normalization", ablated in its experiments):
// one mean/variance per channel of the h·d_q query, no affine parameters, batch statistics in
// training, running ones in eval.
//
// Tensors per token: scores 2·h·√N, candidates h·k², expert activations h·k, and, on the gather
// path only, the retrieved rows 2·h·k·d. The gradients of u and v are scatter-added into one
// [N, d] table per step (never one per token); nothing of size tokens·N is built.
//
// Parameter names (and shapes):
//   query.weight                            [h·d_q, d]  row head·d_q + c
//   query_norm.running_mean / running_var   [h·d_q]     (buffers; only with query_batchnorm)
//   keys1, keys2                            [√N, d_q/2] (C, C′, shared by the heads)
//   u, v                                    [N, d]      row i·√N + j
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "monet/expert_layer.h"
#include "monet/monet_layer.h"
#include "nn/ffn.h"
#include "nn/linear.h"
#include "nn/mlp.h"

namespace monet::moe {

// s of Eq. 2: softmax over a head's k scores, or an elementwise sigmoid.
enum class PeerScore { Softmax, Sigmoid };
std::string peer_score_name(PeerScore s);  // "softmax", "sigmoid"

// The layer's options. The defaults and the rule of each key live in one table, peer_fields()
// (the registry row, peer.cpp); PeerOptions::defaults(d) gives them at model width d.
struct PeerOptions {
  int64_t d = 0;        // model width
  int64_t sqrt_n = 0;   // √N sub-keys per half (N = √N² experts)
  int64_t heads = 0;    // h retrieval heads
  int64_t topk = 0;     // k experts per head (≤ √N)
  int64_t d_query = 0;  // d_q, query width per head (even: sub-keys are d_q/2)
  nn::Activation activation = nn::Activation::GELU;  // σ of e_i: gelu (tanh approximation) | relu
  PeerScore score = PeerScore::Softmax;
  bool query_batchnorm = false;  // BatchNorm (no affine) on the query
  int64_t num_experts() const { return sqrt_n * sqrt_n; }
  static PeerOptions defaults(int64_t d);
  void validate() const;  // monet::Error naming the bad field
};

// The retrieved experts of every (token, head), best first.
struct PeerRetrieval {
  Tensor scores;   // [B, T, h, k]  q·k_i, differentiable into the query and the sub-keys
  Tensor indices;  // [B, T, h, k]  int32 flat expert index i·√N + j
};

// Eq. 1 through product keys. q [B, T, h, d_q] (already normalised), keys [√N, d_q/2].
PeerRetrieval product_key_topk(const Tensor& q, const Tensor& keys1, const Tensor& keys2,
                               int64_t k);

// Eq. 2: softmax over the last axis ("softmax") or elementwise sigmoid ("sigmoid").
Tensor peer_gates(const Tensor& scores, PeerScore score);

// Eq. 3 summed over heads: Σ_h Σ_j g_hj σ(u_jᵀ x) v_j. x [B, T, d]; indices, gates [B, T, h, k];
// u, v [N, d]. Two implementations of one function, checked against each other:
//   peer_experts_gather: rows u_j, v_j gathered with embedding(), then batched matmuls; any
//                        device; [B, T, h·k, d] intermediates (and as many in backward).
//   peer_experts_fused:  CPU ops that read the rows in place (z_j = u_jᵀx, y = Σ_j a_j v_j) and
//                        scatter-add their gradients straight into the [N, d] tables;
//                        [B, T, h·k] intermediates; ≈6x faster at d = 128, h = 8, k = 16.
// peer_experts picks fused where core/kernel_path.h says so, gather elsewhere.
Tensor peer_experts(const Tensor& x, const Tensor& u, const Tensor& v, const Tensor& indices,
                    const Tensor& gates, nn::Activation activation);
Tensor peer_experts_gather(const Tensor& x, const Tensor& u, const Tensor& v, const Tensor& indices,
                           const Tensor& gates, nn::Activation activation);
Tensor peer_experts_fused(const Tensor& x, const Tensor& u, const Tensor& v, const Tensor& indices,
                          const Tensor& gates, nn::Activation activation);

class PeerFeedForward : public nn::FeedForward, public ExpertLayer {
 public:
  PeerFeedForward(const PeerOptions& o, Generator& gen, const nn::ParamOptions& opt = {});
  Tensor forward(const Tensor& x) override;  // x [B, T, d] -> [B, T, d]

  // The last forward's retrieval, detached, for expert analysis: indices and raw scores as in
  // PeerRetrieval, gates g = s(scores) before any expert mask.
  struct Last {
    Tensor indices, scores, gates;  // [B, T, h, k]
  };
  const Last& last_retrieval() const { return last_; }

  // ExpertLayer. A singleton's score for a token is Σ_h g_hj over the heads that retrieved it
  // (0 when none did). Removal: retrieval and gates are computed as if nothing were removed, then
  // each removed expert's term g_hj e_j(x) is dropped (multiplied by an exact 0), so
  //   f_S(x) = f(x) − Σ_h Σ_{j ∈ I_h ∩ S} g_hj e_j(x),
  // the same definition as MONET's pair removal (monet/masking.h): the other experts keep their
  // gates (no renormalisation, no substitute retrieved in place of a removed one). Flat indices
  // i·√N + j in [0, N); an empty list restores the full layer.
  int64_t num_experts() const override { return o_.num_experts(); }
  TokenScores expert_scores() const override;
  void remove_experts(const std::vector<int64_t>& experts) override;
  int64_t expert_grid() const override { return o_.sqrt_n; }

  // The paper's usage statistics (its query-BatchNorm ablation) over the last forward:
  // "expert_usage", the fraction of the N experts retrieved at least once, and "expert_unevenness",
  // the KL divergence of the retrieval histogram from the uniform distribution over N.
  std::vector<std::pair<std::string, double>> metrics() const override;

  const PeerOptions& options() const { return o_; }
  const nn::Linear& query() const { return *query_; }
  const Tensor& keys1() const { return keys1_; }
  const Tensor& keys2() const { return keys2_; }
  const Tensor& u() const { return u_; }
  const Tensor& v() const { return v_; }

 private:
  PeerOptions o_;
  std::shared_ptr<nn::Linear> query_;
  std::shared_ptr<RunningStats> norm_;  // null without query_batchnorm
  Tensor keys1_, keys2_, u_, v_;
  std::vector<uint8_t> removed_;  // [N] 0/1, set by remove_experts (empty: nothing removed)
  Last last_;
};

}  // namespace monet::moe
