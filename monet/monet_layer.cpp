#include "monet/monet_layer.h"

#include "core/autograd.h"
#include "core/ops.h"
#include "monet/aux_loss.h"
#include "monet/registry.h"

namespace monet::moe {

void MonetOptions::validate() const {
  MONET_CHECK(d > 0 && heads > 0 && sqrt_n > 1 && dim > 0 && group > 0,
              "monet: sizes must be positive (d {}, heads {}, sqrt_n {}, dim {}, group {})", d,
              heads, sqrt_n, dim, group);
  MONET_CHECK(topk >= 1 && topk < sqrt_n, "monet: topk {} must be in [1, sqrt_n = {})", topk,
              sqrt_n);
  MONET_CHECK(!vertical || (dim % 2 == 0 && d % 2 == 0),
              "monet_vd: dim {} and d {} must be even (each expert is split in two halves)", dim,
              d);
}

RunningStats::RunningStats(int64_t channels, const nn::ParamOptions& opt) {
  running_mean = register_buffer("running_mean", zeros({channels}, opt.dtype, opt.device));
  running_var = register_buffer("running_var", ones({channels}, opt.dtype, opt.device));
}

MonetRouter::MonetRouter(const MonetOptions& o, Generator& gen, const nn::ParamOptions& opt)
    : o_(o), sigma_(routing_threshold(o.topk, o.sqrt_n)) {
  w1_ =
      register_module("w1", std::make_shared<nn::Linear>(o.d, o.heads * o.sqrt_n, false, gen, opt));
  w2_ =
      register_module("w2", std::make_shared<nn::Linear>(o.d, o.heads * o.sqrt_n, false, gen, opt));
  norm1_ = register_module("norm1", std::make_shared<RunningStats>(o.heads, opt));
  norm2_ = register_module("norm2", std::make_shared<RunningStats>(o.heads, opt));
}

Routing MonetRouter::forward(const Tensor& x) {
  const Shape s{x.size(0), x.size(1), o_.heads, o_.sqrt_n};
  Tensor z1 = w1_->forward(x).reshape(s), z2 = w2_->forward(x).reshape(s);
  return {adaptive_routing(z1, norm1_->running_mean, norm1_->running_var, is_training(), sigma_),
          adaptive_routing(z2, norm2_->running_mean, norm2_->running_var, is_training(), sigma_)};
}

MonetFeedForward::MonetFeedForward(const MonetOptions& o, int layer,
                                   std::shared_ptr<RoutingGroup> group, Generator& gen,
                                   const nn::ParamOptions& opt)
    : o_(o), group_(std::move(group)) {
  o.validate();
  if (layer % o.group == 0)
    router_ = register_module("router", std::make_shared<MonetRouter>(o, gen, opt));
  const int64_t width = o.sqrt_n * o.dim;
  auto linear = [&](const char* name, int64_t in, int64_t out, bool bias) {
    return register_module(name, std::make_shared<nn::Linear>(in, out, bias, gen, opt));
  };
  if (!o.vertical) {
    auto u = linear("u", o.d, width, true);
    auto v = linear("v", width, o.d, false);
    hd_ = {u->weight(), u->bias(), v->weight(),
           register_parameter("b", nn::init_full({o.sqrt_n, o.d}, 0.0, opt))};
  } else {
    auto u1 = linear("u1", o.d, width / 2, true);
    auto u2 = linear("u2", o.d, width / 2, true);
    auto v11 = linear("v11", width / 2, o.d / 2, false),
         v12 = linear("v12", width / 2, o.d / 2, false);
    auto v21 = linear("v21", width / 2, o.d / 2, false),
         v22 = linear("v22", width / 2, o.d / 2, false);
    vd_ = {u1->weight(),
           u1->bias(),
           u2->weight(),
           u2->bias(),
           v11->weight(),
           v12->weight(),
           v21->weight(),
           v22->weight(),
           register_parameter("b1", nn::init_full({o.sqrt_n, o.d / 2}, 0.0, opt)),
           register_parameter("b2", nn::init_full({o.sqrt_n, o.d / 2}, 0.0, opt))};
  }
}

Tensor MonetFeedForward::forward(const Tensor& x) {
  MONET_CHECK(x.dim() == 3 && x.size(2) == o_.d, "monet layer: input {} is not [B, T, {}]",
              shape_str(x.shape()), o_.d);
  aux_ = Tensor();
  if (router_) {
    FlopScope scope(nn::kFlopsRetrieval);
    group_->routing = router_->forward(x);
    Tensor unif = uniformity_loss(group_->routing), amb = ambiguity_loss(group_->routing);
    unif_ = unif.item();
    amb_ = amb.item();
    if (is_training()) aux_ = mul(add(unif, amb), o_.aux_weight);  // Eq. 18
  }
  Routing r = group_->routing;
  MONET_CHECK(r.g1.defined() && r.g1.size(0) == x.size(0) && r.g1.size(1) == x.size(1),
              "monet layer: no routing for input {} (the group's first layer must run first)",
              shape_str(x.shape()));
  FlopScope scope(nn::kFlopsExperts);
  Tensor y = o_.vertical ? monet_vd(x, vd_, r) : monet_hd(x, hd_, r);
  if (!removed_pairs_.empty())
    y = sub(y, o_.vertical ? vd_contribution(x, vd_, r, removed_pairs_)
                           : hd_contribution(x, hd_, r, removed_pairs_));
  return y;
}

TokenScores MonetFeedForward::expert_scores() const {
  // Σ_h ĝ1_hi ĝ2_hj over the non-zero entries only: the router's softmax gives exactly 0 to the
  // sub-experts it did not keep, so a token visits at most H·k1·k2 pairs, never N.
  const Routing& r = group_->routing;
  MONET_CHECK(r.g1.defined(), "monet: no routing yet (run a forward pass first)");
  const int64_t n = r.g1.size(0) * r.g1.size(1), H = r.g1.size(2), S = r.g1.size(3);
  const std::vector<float> g1 = r.g1.to_vector<float>(), g2 = r.g2.to_vector<float>();
  TokenScoresBuilder out(S * S);
  std::vector<std::pair<int32_t, float>> a, b;
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t h = 0; h < H; ++h) {
      const float* p1 = g1.data() + (t * H + h) * S;
      const float* p2 = g2.data() + (t * H + h) * S;
      a.clear(), b.clear();
      for (int32_t i = 0; i < S; ++i) {
        if (p1[i] > 0) a.emplace_back(i, p1[i]);
        if (p2[i] > 0) b.emplace_back(i, p2[i]);
      }
      for (const auto& [i, gi] : a)
        for (const auto& [j, gj] : b) out.add(static_cast<int32_t>(i * S + j), gi * gj);
    }
    out.end_token();
  }
  return out.take();
}

void MonetFeedForward::remove_experts(const std::vector<int64_t>& experts) {
  const int64_t S = o_.sqrt_n;
  ExpertPairs pairs;
  for (int64_t e : experts) {
    MONET_CHECK(e >= 0 && e < S * S, "monet: removed expert {} outside [0, {})", e, S * S);
    pairs.emplace_back(e / S, e % S);
  }
  removed_pairs_ = std::move(pairs);
}

// ---- the registry rows (monet/registry.h) ----

namespace {
// docs/math/monet.md §4: H routing heads, √N sub-experts per router (N = √N² experts), expert
// width m ("dim"), k kept sub-experts per head, G layers per routing group, λ of the aux losses.
// The default √N keeps the paper's √N·m = 4d at m = 8.
const std::vector<Field<MonetOptions>>& monet_fields() {
  using O = MonetOptions;
  static const std::vector<Field<O>> f = {
      int_field("heads", &O::heads, fixed(4), 1, "H routing heads"),
      int_field("sqrt_n", &O::sqrt_n, d_over(2), 1, "√N sub-experts per router (N = √N²)"),
      int_field("dim", &O::dim, fixed(8), 1, "m, hidden width of one expert"),
      int_field("topk", &O::topk, fixed(8), 1, "k, sub-experts kept per head (the target)"),
      int_field("group", &O::group, fixed(4), 1, "G, layers sharing one router"),
      number_field("aux_weight", &O::aux_weight, 1e-3, 0, "λ of L_unif + L_amb"),
  };
  return f;
}

FfnKind make_monet_kind(bool vertical) {
  MonetOptions base;
  base.vertical = vertical;
  FfnKind r = make_kind<MonetOptions>(
      vertical ? "monet_vd" : "monet_hd", vertical ? "MONET-VD" : "MONET-HD",
      vertical ? "MONET-VD: vertical expert decomposition (Park et al. 2024)"
               : "MONET-HD: horizontal expert decomposition (Park et al. 2024)",
      monet_fields(),
      [](const MonetOptions& o, const BuildContext& c) -> FeedForwardFactory {
        // A new routing group every G layers; the group's first layer owns the router.
        auto group = std::make_shared<RoutingGroup>();
        return [o, c, group](int layer) mutable {
          if (layer % o.group == 0) group = std::make_shared<RoutingGroup>();
          return std::make_shared<MonetFeedForward>(o, layer, group, *c.init, c.param);
        };
      },
      base);
  r.has_experts = true;
  r.is_expert_param = [](std::string_view name) { return name.rfind("router.", 0) != 0; };
  r.n_key = "sqrt_n";
  r.table1 = FfnKind::Exponents{0.5, 0.5};
  r.hf_decompose = vertical ? "vertical" : "horizontal";
  r.sweep = [](int64_t sqrt_n) {  // Table 1: H 4, m 16, k 8, a router per layer
    return nlohmann::json{{"heads", 4}, {"sqrt_n", sqrt_n}, {"dim", 16}, {"topk", 8}, {"group", 1}};
  };
  return r;
}
}  // namespace

MonetOptions MonetOptions::defaults(int64_t d, bool vertical) {
  MonetOptions base;
  base.vertical = vertical;
  return options_at(monet_fields(), d, base);
}

const FfnKind& monet_hd_kind() {
  static const FfnKind k = make_monet_kind(false);
  return k;
}
const FfnKind& monet_vd_kind() {
  static const FfnKind k = make_monet_kind(true);
  return k;
}

}  // namespace monet::moe
