#include "monet/monet_layer.h"

#include "core/autograd.h"
#include "core/ops.h"
#include "monet/aux_loss.h"

namespace monet::moe {

void MonetOptions::validate() const {
  MONET_CHECK(d > 0 && heads > 0 && sqrt_n > 1 && dim > 0 && group > 0,
              "monet: sizes must be positive (d {}, heads {}, sqrt_n {}, dim {}, group {})", d,
              heads, sqrt_n, dim, group);
  MONET_CHECK(topk >= 1 && topk < sqrt_n, "monet: topk {} must be in [1, sqrt_n = {})", topk, sqrt_n);
  MONET_CHECK(!vertical || (dim % 2 == 0 && d % 2 == 0),
              "monet_vd: dim {} and d {} must be even (each expert is split in two halves)", dim, d);
}

RunningStats::RunningStats(int64_t channels, const nn::ParamOptions& opt) {
  running_mean = register_buffer("running_mean", zeros({channels}, opt.dtype, opt.device));
  running_var = register_buffer("running_var", ones({channels}, opt.dtype, opt.device));
}

MonetRouter::MonetRouter(const MonetOptions& o, Generator& gen, const nn::ParamOptions& opt)
    : o_(o), sigma_(routing_threshold(o.topk, o.sqrt_n)) {
  w1_ = register_module("w1", std::make_shared<nn::Linear>(o.d, o.heads * o.sqrt_n, false, gen, opt));
  w2_ = register_module("w2", std::make_shared<nn::Linear>(o.d, o.heads * o.sqrt_n, false, gen, opt));
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
  if (layer % o.group == 0) router_ = register_module("router", std::make_shared<MonetRouter>(o, gen, opt));
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
    auto v11 = linear("v11", width / 2, o.d / 2, false), v12 = linear("v12", width / 2, o.d / 2, false);
    auto v21 = linear("v21", width / 2, o.d / 2, false), v22 = linear("v22", width / 2, o.d / 2, false);
    vd_ = {u1->weight(), u1->bias(), u2->weight(), u2->bias(), v11->weight(), v12->weight(),
           v21->weight(), v22->weight(),
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
  if (!removed1_.empty() || !removed2_.empty()) r = mask_subexperts(r, removed1_, removed2_);
  FlopScope scope(nn::kFlopsExperts);
  Tensor y = o_.vertical ? monet_vd(x, vd_, r) : monet_hd(x, hd_, r);
  if (!removed_pairs_.empty())
    y = sub(y, o_.vertical ? vd_contribution(x, vd_, r, removed_pairs_)
                           : hd_contribution(x, hd_, r, removed_pairs_));
  return y;
}

}  // namespace monet::moe
