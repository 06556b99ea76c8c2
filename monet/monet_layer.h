// MONET as a transformer feed-forward layer: the router of §3 (owned by the first layer of each
// routing group of G consecutive layers, reused by the others) in front of MONET-HD or MONET-VD.
//
// Parameter names follow the authors' modeling_monet.py, so a checkpoint reads like theirs:
//   router.w1.weight, router.w2.weight                  [H·√N, d]  row h·√N + i
//   router.norm1.running_mean / running_var, norm2.*    [H]        (buffers)
//   HD: u.weight [√N·m, d] (row i·m + r), u.bias [√N·m], v.weight [d, √N·m], b [√N, d]
//   VD: u1.weight, u2.weight [√N·m/2, d], u1.bias, u2.bias [√N·m/2],
//       v11.weight, v12.weight, v21.weight, v22.weight [d/2, √N·m/2], b1, b2 [√N, d/2]
#pragma once
#include <memory>

#include "monet/expert_layer.h"
#include "monet/masking.h"
#include "monet/monet_hd.h"
#include "monet/monet_vd.h"
#include "nn/ffn.h"
#include "nn/linear.h"

namespace monet::moe {

// The layer's options. The defaults and the rule of each key live in one table, monet_fields()
// (the registry rows monet_hd and monet_vd, monet_layer.cpp); MonetOptions::defaults(d, vertical)
// gives them at model width d.
struct MonetOptions {
  int64_t d = 0;          // model width
  int64_t heads = 0;      // H, routing heads
  int64_t sqrt_n = 0;     // √N sub-experts per sub-router (N = √N² composed experts)
  int64_t dim = 0;        // m, hidden width of one expert
  int64_t topk = 0;       // k, the target number of kept sub-experts per head
  int64_t group = 0;      // G, layers sharing one router
  bool vertical = false;  // VD (true) or HD (false): which row, not a config key
  double aux_weight = 0;  // λ of L_unif + L_amb
  static MonetOptions defaults(int64_t d, bool vertical);
  void validate() const;  // monet::Error naming the bad field
};

// What a routing group shares: the owner layer's latest routing, read by the other layers.
struct RoutingGroup {
  Routing routing;
};

// One mean/variance per routing head (BatchNorm without affine parameters).
class RunningStats : public nn::Module {
 public:
  RunningStats(int64_t channels, const nn::ParamOptions& opt);
  Tensor running_mean, running_var;
};

class MonetRouter : public nn::Module {
 public:
  MonetRouter(const MonetOptions& o, Generator& gen, const nn::ParamOptions& opt);
  Routing forward(const Tensor& x);  // x [B, T, d] -> g1, g2 [B, T, H, √N]

 private:
  MonetOptions o_;
  double sigma_;
  std::shared_ptr<nn::Linear> w1_, w2_;
  std::shared_ptr<RunningStats> norm1_, norm2_;
};

class MonetFeedForward : public nn::FeedForward, public ExpertLayer {
 public:
  // `layer` decides whether this layer owns the group's router (layer % G == 0).
  MonetFeedForward(const MonetOptions& o, int layer, std::shared_ptr<RoutingGroup> group,
                   Generator& gen, const nn::ParamOptions& opt);
  Tensor forward(const Tensor& x) override;
  // λ(L_unif + L_amb) of the routing computed by this layer; undefined on layers that reuse it.
  Tensor aux_loss() const override { return aux_; }
  // The last routing this layer used (its own or the group's).
  const Routing& last_routing() const { return group_->routing; }

  // ExpertLayer. Composed expert (i, j), flat index i·√N + j, scores Σ_h ĝ1_hi ĝ2_hj for a token;
  // the G layers of a routing group share the scores (routing_key). Removal subtracts exactly the
  // removed experts' contribution Σ_h ĝ1_hi ĝ2_hj E_ij(x) (monet/masking.h) from this layer.
  int64_t num_experts() const override { return o_.sqrt_n * o_.sqrt_n; }
  TokenScores expert_scores() const override;
  void remove_experts(const std::vector<int64_t>& experts) override;
  int64_t expert_grid() const override { return o_.sqrt_n; }
  const void* routing_key() const override { return group_.get(); }

  const MonetOptions& options() const { return o_; }
  // Unweighted parts of the last aux loss (layers that own a router), for the training log.
  std::vector<std::pair<std::string, double>> metrics() const override {
    if (!router_) return {};
    return {{"uniformity", unif_}, {"ambiguity", amb_}};
  }

 private:
  MonetOptions o_;
  std::shared_ptr<RoutingGroup> group_;
  std::shared_ptr<MonetRouter> router_;
  HdWeights hd_;
  VdWeights vd_;
  Tensor aux_;
  double unif_ = 0, amb_ = 0;
  ExpertPairs removed_pairs_;
};

}  // namespace monet::moe
