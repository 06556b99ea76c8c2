// Sparse mixture of experts (SMoE) as a transformer feed-forward layer.
//
// Experts (Shazeer et al. 2017, arXiv 1701.06538, Eq. 1):  y = Σ_{i∈K(x)} g_i(x) E_i(x),
//   E_i(x) = V_i σ(U_i x),  U = w1 [E, m, d],  V = w2 [E, d, m],  σ = relu² (or gelu).
// Gating, over router logits l = x W_gᵀ (W_g = gate.weight [E, d]), kept in fp32 or wider:
//   softmax     g = softmax(l), all E experts (Shazeer Eq. 2; Jordan & Jacobs 1994). No aux loss.
//   noisy_topk  H = l + ε ⊙ softplus(x W_noiseᵀ), ε ~ N(0, 1) in training only (Shazeer Eq. 4);
//               K = TopK(H, k), g = softmax over K (Eq. 3, 5). W_g, W_noise start at 0.
//               L_importance = w_imp · CV²(Σ_x g(x))                              (Eq. 6–7)
//               L_load       = w_load · CV²(Load(X)),  Load(X)_i = Σ_x P(x, i)  (App. A, Eq. 8–11)
//               P(x, i) = Φ((l_i − kth_excluding(H, k, i)) / softplus((x W_noiseᵀ)_i)),
//               kth_excluding(H, k, i) = the k-th largest H_j over j ≠ i. CV² = var / mean².
//               (The paper's softplus, without the 1e-2 its released code adds; in eval H = l.)
//   switch      p = softmax(l); top-1 i; g = p_i (output scaled by the router probability)
//               (Fedus et al. 2021, arXiv 2101.03961, §2.1). Optional jitter: the router's input
//               is multiplied by U(1 − ε, 1 + ε) in training (the experts see the clean x).
//   gshard      p = softmax(l); top-2 i1, i2; g1, g2 = p_i1, p_i2 renormalised to sum 1
//               (Lepikhin et al. 2020, arXiv 2006.16668, Alg. 1; its random second-expert routing
//               is not implemented: the second choice is always kept).
//   switch and gshard:  L_balance = α · E · Σ_i f_i P_i, f_i = fraction of tokens whose first
//               choice is i (before any dropping), P_i = mean_x p_i(x); = α at a uniform split
//               (Switch Eq. 4–6, α = 1e-2).  L_z = w_z · mean_x (logsumexp l(x))²  (ST-MoE,
//               Zoph et al. 2022, arXiv 2202.08906, Eq. 5, w_z = 1e-3).
// Dispatch (monet/dispatch.h): dropless (MegaBlocks) when capacity_factor = 0, else capacity
// C = ⌈tokens·k·CF / E⌉ with token dropping (dropped pairs contribute 0: the token passes through
// the residual).
//
// Parameters: gate.weight [E, d] (a Linear without bias), noise.weight [E, d] (noisy_topk only),
// w1 [E, m, d], w2 [E, d, m]; w1, w2 ~ N(0, 0.02²).
//
// Removing experts (for evaluation): remove_experts marks experts as removed. Routing, gates and
// aux losses are computed exactly as without the mask; then every (token, slot) pair routed to a
// removed expert contributes 0 — i.e. y loses exactly g_i(x) E_i(x) for each removed i — and the
// other gates are not renormalised (as the MONET layers' masking subtracts contributions).
#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "monet/dispatch.h"
#include "monet/expert_layer.h"
#include "monet/expert_parallel.h"
#include "nn/ffn.h"
#include "nn/linear.h"

namespace monet::moe {

enum class Gating { Softmax, NoisyTopK, Switch, GShard };
std::string gating_name(Gating g);          // "softmax", "noisy_topk", "switch", "gshard"
Gating parse_gating(const std::string& s);  // inverse; monet::Error on anything else

// The layer's options. The defaults and the rule of each key live in one table, smoe_fields()
// (the registry row, smoe.cpp); SmoeOptions::defaults(d) gives them at model width d.
struct SmoeOptions {
  int64_t d = 0;        // model width
  int64_t experts = 0;  // E
  int64_t dim = 0;      // m, hidden width of one expert; 0: 4·d / k (a 4d MLP's compute)
  int64_t topk = 0;     // k; 0: the gating's own (softmax E, noisy_topk 2, switch 1,
                        // gshard 2); softmax, switch and gshard accept only their own
  Gating gating = Gating::Switch;
  double capacity_factor = 0;    // CF; 0 = dropless
  double balance_weight = 0;     // α of L_balance (switch, gshard)
  double z_weight = 0;           // w_z of the router z-loss (switch, gshard)
  double importance_weight = 0;  // w_importance (noisy_topk)
  double load_weight = 0;        // w_load (noisy_topk)
  double jitter = 0;             // ε of the router input jitter (switch, gshard); 0 = off
  nn::Activation activation = nn::Activation::ReLU2;  // relu2 | gelu

  static SmoeOptions defaults(int64_t d);
  void validate() const;   // monet::Error naming the bad field
  int64_t k() const;       // topk resolved
  int64_t hidden() const;  // dim resolved
};

// The router's weights: W_g [E, d] and, for noisy_topk, W_noise [E, d] (Linear layout).
struct GateWeights {
  Tensor gate, noise;
};

// One routing decision for n tokens, and the unweighted aux-loss parts (scalars, undefined when
// the gating has none).
struct Route {
  Tensor idx;     // [n, k] int32, slot 0 = first choice
  Tensor gates;   // [n, k] g, differentiable
  Tensor logits;  // [n, E] l = x W_gᵀ (clean; with jitter for switch/gshard in training)
  Tensor importance_cv2, load_cv2;  // noisy_topk
  Tensor balance, z_loss;           // switch, gshard: E·Σ f_i P_i and mean (logsumexp l)²
};

// x [n, d] → routing. `noise` draws ε (noisy_topk) and the jitter; needed only in training.
// `eps` [n, E], when defined, is used as noisy_topk's ε instead of a draw from `noise` (the
// injection point of tests/test_reference_smoe.cpp, which replays the PyTorch twin's draw).
Route route(const Tensor& x, const GateWeights& w, const SmoeOptions& o, bool training,
            Generator* noise, const Tensor& eps = {});
// Σ of the weighted aux losses of `r` (undefined when there are none).
Tensor weighted_aux_loss(const Route& r, const SmoeOptions& o);

// The loss pieces, exposed for tests.
Tensor cv_squared(const Tensor& v);  // var/mean² of a 1-D tensor (population variance), 0 if E = 1
// Σ_x P(x, i) → [E]; clean, noisy [n, E] (H), noise_std [n, E] = softplus(x W_noiseᵀ); k < E.
Tensor smooth_load(const Tensor& clean, const Tensor& noisy, const Tensor& noise_std, int64_t k);
// E · Σ_i f_i P_i; probs [n, E], first [n] int32 (the first choices).
Tensor balance_loss(const Tensor& probs, const Tensor& first);
Tensor router_z_loss(const Tensor& logits);  // mean_x (logsumexp l(x))²

// The whole layer as a function: x [n, d] → y [n, d]. `removed` (size E or empty) masks experts
// as described above; `stats` receives what the dispatch did.
struct SmoeResult {
  Tensor y;
  Route route;
  DispatchStats stats;
};
// With `ep`, the layer is expert parallel (monet/expert_parallel.h): w holds this rank's experts
// and the dropless dispatch sends the tokens to their experts' ranks.
SmoeResult smoe(const Tensor& x, const GateWeights& g, const ExpertWeights& w, const SmoeOptions& o,
                bool training, Generator* noise, const std::vector<bool>& removed = {},
                const Tensor& eps = {},  // eps: as in route()
                Communicator* ep = nullptr);

class SmoeFeedForward : public nn::FeedForward, public ExpertLayer {
 public:
  // `gen` initialises the weights; `noise` (owned by the trainer, saved in its checkpoints) draws
  // the routing noise and jitter in training. It may be null when the gating draws nothing.
  SmoeFeedForward(const SmoeOptions& o, Generator& gen, const nn::ParamOptions& opt = {},
                  Generator* noise = nullptr);
  Tensor forward(const Tensor& x) override;  // [..., d] → [..., d]
  // The weighted sum of this layer's aux losses of the last forward, in training only.
  Tensor aux_loss() const override { return aux_; }

  // Unweighted parts of the last forward, for logs: importance_cv2, load_cv2 (noisy_topk),
  // balance, z_loss (switch, gshard), aux_loss (weighted sum), dropped_fraction (pairs over
  // capacity / pairs routed), dropped_token_fraction, capacity (0 = dropless).
  std::map<std::string, double> last_metrics() const { return metrics_; }
  // For the training log (averaged over layers by the transformer): last_metrics() without
  // aux_loss (the trainer logs the total) and capacity.
  std::vector<std::pair<std::string, double>> metrics() const override;
  const DispatchStats& last_stats() const { return stats_; }
  // The last forward's routing, detached: idx and gates [tokens, k] as route() gave them,
  // before any expert removal.
  const Route& last_route() const { return last_route_; }

  // ExpertLayer: expert e's score for a token is its gate g_e (0 when e is not among the token's
  // top k); removal drops exactly g_e E_e(x) (see the file header).
  int64_t num_experts() const override { return o_.experts; }
  TokenScores expert_scores() const override;
  void remove_experts(const std::vector<int64_t>& experts) override;
  void set_noise_generator(Generator* noise) { noise_ = noise; }
  // Expert parallelism: keeps only this rank's E/R experts (w1, w2 become [E/R, ...] slices of
  // the weights built so far) and runs every later forward through moe_dropless_ep on `comm`,
  // which must outlive the layer's use. Dropless only. Returns the shard.
  ExpertShard shard_experts(Communicator& comm);
  const SmoeOptions& options() const { return o_; }
  GateWeights gate_weights() const { return gw_; }
  ExpertWeights expert_weights() const { return ew_; }

 private:
  SmoeOptions o_;
  Generator* noise_;
  GateWeights gw_;
  ExpertWeights ew_;
  std::vector<bool> removed_;
  Communicator* ep_ = nullptr;
  Tensor aux_;
  DispatchStats stats_;
  Route last_route_;
  std::map<std::string, double> metrics_;
};

}  // namespace monet::moe
