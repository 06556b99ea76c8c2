#include "monet/smoe.h"

#include "core/autograd.h"
#include "core/ops.h"
#include "monet/registry.h"

namespace monet::moe {

std::string gating_name(Gating g) {
  switch (g) {
    case Gating::Softmax:
      return "softmax";
    case Gating::NoisyTopK:
      return "noisy_topk";
    case Gating::Switch:
      return "switch";
    case Gating::GShard:
      return "gshard";
  }
  return "?";
}

Gating parse_gating(const std::string& s) {
  for (Gating g : {Gating::Softmax, Gating::NoisyTopK, Gating::Switch, Gating::GShard})
    if (gating_name(g) == s) return g;
  MONET_CHECK(false, "smoe: unknown gating '{}' (expected softmax, noisy_topk, switch or gshard)",
              s);
  return Gating::Switch;
}

// ---- options ----

int64_t SmoeOptions::k() const {
  if (topk > 0) return topk;
  switch (gating) {
    case Gating::Softmax:
      return experts;
    case Gating::Switch:
      return 1;
    case Gating::NoisyTopK:
    case Gating::GShard:
      return 2;
  }
  return 1;
}

int64_t SmoeOptions::hidden() const {
  return dim > 0 ? dim : std::max<int64_t>(1, 4 * d / k());
}

void SmoeOptions::validate() const {
  MONET_CHECK(d > 0 && experts > 0 && dim >= 0 && topk >= 0,
              "smoe: sizes must be positive (d {}, experts {}) and dim {}, topk {} non-negative", d,
              experts, dim, topk);
  const Gating g = gating;
  const int64_t kk = k();
  switch (g) {
    case Gating::Softmax:
      MONET_CHECK(kk == experts, "smoe: softmax gating is dense: topk {} must be 0 or experts {}",
                  topk, experts);
      break;
    case Gating::NoisyTopK:
      MONET_CHECK(kk >= 1 && kk < experts,
                  "smoe: noisy_topk needs 1 <= topk < experts (the load estimator uses the "
                  "(k+1)-th logit), got topk {} experts {}",
                  kk, experts);
      break;
    case Gating::Switch:
      MONET_CHECK(kk == 1 && experts >= 2,
                  "smoe: switch is top-1 over >= 2 experts, got topk {} experts {}", kk, experts);
      break;
    case Gating::GShard:
      MONET_CHECK(kk == 2 && experts >= 2,
                  "smoe: gshard is top-2 over >= 2 experts, got topk {} experts {}", kk, experts);
      break;
  }
  MONET_CHECK(capacity_factor >= 0, "smoe: capacity_factor {} must be >= 0 (0 = dropless)",
              capacity_factor);
  MONET_CHECK(balance_weight >= 0 && z_weight >= 0 && importance_weight >= 0 && load_weight >= 0,
              "smoe: aux weights must be >= 0 (balance {}, z {}, importance {}, load {})",
              balance_weight, z_weight, importance_weight, load_weight);
  MONET_CHECK(jitter >= 0 && jitter < 1, "smoe: jitter {} must be in [0, 1)", jitter);
  MONET_CHECK(jitter == 0 || g == Gating::Switch || g == Gating::GShard,
              "smoe: jitter applies to switch and gshard gating, not '{}'", gating_name(g));
  MONET_CHECK(activation == nn::Activation::ReLU2 || activation == nn::Activation::GELU,
              "smoe: activation '{}' must be relu2 or gelu", nn::activation_name(activation));
}

// ---- loss pieces ----

Tensor cv_squared(const Tensor& v) {
  MONET_CHECK(v.dim() == 1, "cv_squared: expected a 1-D tensor, got {}", shape_str(v.shape()));
  if (v.numel() <= 1) return zeros({}, v.dtype(), v.device());
  Tensor mu = mean(v), c = sub(v, mu);
  return div(mean(mul(c, c)), add(mul(mu, mu), 1e-10));  // var / (mean² + 1e-10), as Shazeer's code
}

Tensor smooth_load(const Tensor& clean, const Tensor& noisy, const Tensor& noise_std, int64_t k) {
  MONET_CHECK(clean.dim() == 2 && clean.shape() == noisy.shape() &&
                  clean.shape() == noise_std.shape() && k >= 1 && k < clean.size(1),
              "smooth_load: clean {}, noisy {}, noise_std {} must be one [n, E] shape, k {} < E",
              shape_str(clean.shape()), shape_str(noisy.shape()), shape_str(noise_std.shape()), k);
  Tensor top = topk(noisy, k + 1).first;
  Tensor thr_in = slice(top, 1, k, k + 1);   // kth_excluding(H, k, i) when i is in the top k
  Tensor thr_out = slice(top, 1, k - 1, k);  // ... and when it is not: the k-th largest
  Tensor is_in = greater(noisy, thr_in);
  Tensor p_in = std_normal_cdf(div(sub(clean, thr_in), noise_std));
  Tensor p_out = std_normal_cdf(div(sub(clean, thr_out), noise_std));
  return sum(where(is_in, p_in, p_out), {0});  // Load(X)_i = Σ_x P(x, i)   (App. A, Eq. 10)
}

Tensor balance_loss(const Tensor& probs, const Tensor& first) {
  MONET_CHECK(probs.dim() == 2 && first.dim() == 1 && first.size(0) == probs.size(0) &&
                  first.dtype() == DType::I32,
              "balance_loss: probs {} must be [n, E] and first int32 [n], got {} {}",
              shape_str(probs.shape()), dtype_name(first.dtype()), shape_str(first.shape()));
  const int64_t n = probs.size(0), E = probs.size(1);
  std::vector<double> f(E, 0.0);  // f_i = (1/n) Σ_x 1{argmax p(x) = i}: no gradient
  for (int32_t e : first.to_vector<int32_t>()) f[e] += 1.0 / static_cast<double>(n);
  Tensor ft = from_vector(f, {E}).to(probs.dtype()).to(probs.device());  // cast on the host
  return mul(sum(mul(ft, mean(probs, {0}))), static_cast<double>(E));    // E · Σ_i f_i P_i
}

Tensor router_z_loss(const Tensor& logits) {
  Tensor lse = logsumexp(logits, -1);
  return mean(mul(lse, lse));
}

// ---- routing ----

namespace {
Generator& need_noise(Generator* noise, const SmoeOptions& o, const char* what) {
  MONET_CHECK(noise != nullptr,
              "smoe: {} gating draws {} in training: give the layer a Generator "
              "(SmoeFeedForward's `noise` argument or set_noise_generator)",
              gating_name(o.gating), what);
  return *noise;
}
}  // namespace

Route route(const Tensor& x, const GateWeights& w, const SmoeOptions& o, bool training,
            Generator* noise, const Tensor& eps) {
  MONET_CHECK(x.dim() == 2 && x.size(1) == o.d, "smoe route: x {} is not [n, d = {}]",
              shape_str(x.shape()), o.d);
  const Gating kind = o.gating;
  const int64_t n = x.size(0), E = o.experts, k = o.k();
  Tensor xr = x;
  if (training && o.jitter > 0) {  // Switch jitter: x ⊙ U(1 − ε, 1 + ε), router input only
    Generator& g = need_noise(noise, o, "jitter");
    xr = mul(x, uniform(x.shape(), 1.0 - o.jitter, 1.0 + o.jitter, g, x.dtype(), x.device()));
  }
  Route r;
  r.logits = nn::linear(xr, w.gate);  // l = x W_gᵀ   [n, E]
  switch (kind) {
    case Gating::Softmax: {
      r.gates = softmax(r.logits, -1);
      std::vector<int32_t> all(n * E);  // every token, every expert, in order
      for (int64_t p = 0; p < n * E; ++p) all[p] = static_cast<int32_t>(p % E);
      r.idx = from_vector(all, {n, E}, x.device());
      break;
    }
    case Gating::NoisyTopK: {
      MONET_CHECK(w.noise.defined(), "smoe route: noisy_topk needs W_noise");
      Tensor noise_std = softplus(nn::linear(x, w.noise));  // softplus(x W_noiseᵀ)
      Tensor h = r.logits;                                  // H(x), Eq. 4
      if (training) {
        Tensor e;  // ε ~ N(0, 1), or the caller's
        if (eps.defined()) {
          MONET_CHECK(eps.shape() == (Shape{n, E}),
                      "smoe route: injected noise {} is not [n, E] = [{}, {}]",
                      shape_str(eps.shape()), n, E);
          e = eps.detach().to(x.dtype()).to(x.device());
        } else {
          e = randn({n, E}, need_noise(noise, o, "noise"), x.dtype(), x.device());
        }
        h = add(h, mul(e, noise_std));
      }
      auto [top, index] = topk(h, k);  // KeepTopK (Eq. 5)
      r.idx = index;
      r.gates = softmax(top, -1);  // G(x) = Softmax(KeepTopK(H(x), k))  (Eq. 3)
      Tensor dense = scatter_add(zeros({n, E}, x.dtype(), x.device()), 1, index, r.gates);
      r.importance_cv2 = cv_squared(sum(dense, {0}));  // Importance(X) = Σ_x G(x)  (Eq. 6)
      r.load_cv2 = cv_squared(smooth_load(r.logits, h, noise_std, k));
      break;
    }
    case Gating::Switch:
    case Gating::GShard: {
      Tensor probs = softmax(r.logits, -1);  // the router's softmax, in x's dtype (fp32 or f64)
      auto [top, index] = topk(probs, k);
      r.idx = index;
      r.gates =
          kind == Gating::Switch ? top : div(top, sum(top, {1}, true));  // g1, g2 renormalised
      r.balance = balance_loss(probs, slice(index, 1, 0, 1).reshape({n}));
      r.z_loss = router_z_loss(r.logits);
      break;
    }
  }
  return r;
}

Tensor weighted_aux_loss(const Route& r, const SmoeOptions& o) {
  Tensor total;
  auto add_term = [&](const Tensor& part, double weight) {
    if (!part.defined()) return;
    Tensor t = mul(part, weight);
    total = total.defined() ? add(total, t) : t;
  };
  add_term(r.importance_cv2, o.importance_weight);
  add_term(r.load_cv2, o.load_weight);
  add_term(r.balance, o.balance_weight);
  add_term(r.z_loss, o.z_weight);
  return total;
}

SmoeResult smoe(const Tensor& x, const GateWeights& g, const ExpertWeights& w, const SmoeOptions& o,
                bool training, Generator* noise, const std::vector<bool>& removed,
                const Tensor& eps, Communicator* ep) {
  SmoeResult res;
  {
    FlopScope scope(nn::kFlopsRetrieval);
    res.route = route(x, g, o, training, noise, eps);
  }
  Tensor idx = res.route.idx;
  if (!removed.empty()) {  // removed experts: their pairs contribute 0 (see smoe.h)
    MONET_CHECK(static_cast<int64_t>(removed.size()) == o.experts,
                "smoe: expert mask has {} entries for {} experts", removed.size(), o.experts);
    std::vector<int32_t> ih = idx.to_vector<int32_t>();
    for (int32_t& e : ih)
      if (removed[e]) e = -1;
    idx = from_vector(ih, idx.shape(), idx.device());
  }
  FlopScope scope(nn::kFlopsExperts);
  if (ep) {
    MONET_CHECK(o.capacity_factor == 0,
                "smoe: expert parallelism runs the dropless dispatch; capacity_factor is {}",
                o.capacity_factor);
    res.y = moe_dropless_ep(x, idx, res.route.gates, w, o.experts, o.activation, *ep, &res.stats);
  } else {
    res.y =
        o.capacity_factor > 0
            ? moe_capacity(x, idx, res.route.gates, w, o.activation, o.capacity_factor, &res.stats)
            : moe_dropless(x, idx, res.route.gates, w, o.activation, &res.stats);
  }
  return res;
}

// ---- the layer ----

SmoeFeedForward::SmoeFeedForward(const SmoeOptions& o, Generator& gen, const nn::ParamOptions& opt,
                                 Generator* noise)
    : o_(o), noise_(noise) {
  o.validate();
  const int64_t E = o.experts, m = o.hidden();
  auto gate = register_module("gate", std::make_shared<nn::Linear>(o.d, E, false, gen, opt));
  gw_.gate = gate->weight();
  if (o.gating == Gating::NoisyTopK) {  // Shazeer App. A: W_g and W_noise start at zero
    auto noise_lin =
        register_module("noise", std::make_shared<nn::Linear>(o.d, E, false, gen, opt));
    gw_.noise = noise_lin->weight();
    fill_(gw_.gate, 0.0);
    fill_(gw_.noise, 0.0);
  }
  ew_.w1 = register_parameter("w1", nn::init_normal({E, m, o.d}, gen, opt));  // U
  ew_.w2 = register_parameter("w2", nn::init_normal({E, o.d, m}, gen, opt));  // V
}

std::vector<std::pair<std::string, double>> SmoeFeedForward::metrics() const {
  std::vector<std::pair<std::string, double>> out;
  for (const auto& [name, value] : metrics_)
    if (name != "aux_loss" && name != "capacity") out.emplace_back(name, value);
  return out;
}

TokenScores SmoeFeedForward::expert_scores() const {
  MONET_CHECK(last_route_.idx.defined(), "smoe: no routing yet (run a forward pass first)");
  const int64_t n = last_route_.idx.size(0), k = last_route_.idx.size(1);
  const std::vector<int32_t> idx = last_route_.idx.to_vector<int32_t>();
  const std::vector<float> g = last_route_.gates.to_vector<float>();
  TokenScoresBuilder out(o_.experts);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t c = 0; c < k; ++c) out.add(idx[t * k + c], g[t * k + c]);
    out.end_token();
  }
  return out.take();
}

void SmoeFeedForward::remove_experts(const std::vector<int64_t>& experts) {
  for (int64_t e : experts)
    MONET_CHECK(e >= 0 && e < o_.experts, "smoe: removed expert {} outside [0, {})", e, o_.experts);
  removed_.clear();
  if (experts.empty()) return;
  removed_.assign(static_cast<size_t>(o_.experts), false);
  for (int64_t e : experts) removed_[static_cast<size_t>(e)] = true;
}

Tensor SmoeFeedForward::forward(const Tensor& x) {
  MONET_CHECK(x.dim() >= 1 && x.size(-1) == o_.d, "smoe layer: input {} does not end in d = {}",
              shape_str(x.shape()), o_.d);
  SmoeResult res =
      smoe(reshape(x, {-1, o_.d}), gw_, ew_, o_, is_training(), noise_, removed_, {}, ep_);
  FlopScope scope(nn::kFlopsRetrieval);  // the balance losses belong to routing
  Tensor aux = weighted_aux_loss(res.route, o_);
  aux_ = is_training() ? aux : Tensor();
  stats_ = res.stats;
  last_route_ = Route{};
  last_route_.idx = res.route.idx;
  last_route_.gates = res.route.gates.detach();
  metrics_.clear();
  const Route& r = res.route;
  for (auto [name, part] :
       {std::pair{"importance_cv2", r.importance_cv2}, std::pair{"load_cv2", r.load_cv2},
        std::pair{"balance", r.balance}, std::pair{"z_loss", r.z_loss}, std::pair{"aux_loss", aux}})
    if (part.defined()) metrics_[name] = part.item();
  const double assigned = static_cast<double>(std::max<int64_t>(1, stats_.assigned));
  metrics_["dropped_fraction"] = static_cast<double>(stats_.dropped) / assigned;
  metrics_["dropped_token_fraction"] =
      static_cast<double>(stats_.dropped_tokens) / static_cast<double>(res.y.size(0));
  metrics_["capacity"] = static_cast<double>(stats_.capacity);
  return reshape(res.y, x.shape());
}

ExpertShard SmoeFeedForward::shard_experts(Communicator& comm) {
  MONET_CHECK(o_.capacity_factor == 0,
              "smoe: expert parallelism runs the dropless dispatch; capacity_factor is {} (set "
              "it to 0)",
              o_.capacity_factor);
  MONET_CHECK(ep_ == nullptr, "smoe: the experts are sharded already");
  const ExpertShard s = expert_shard(o_.experts, comm);
  ew_.w1 = replace_parameter("w1", shard_rows(ew_.w1, s));
  ew_.w2 = replace_parameter("w2", shard_rows(ew_.w2, s));
  ep_ = &comm;
  return s;
}

// ---- the registry row (monet/registry.h) ----

namespace {
// docs/math/smoe.md §2: E experts of width m ("dim", 0: 4·d/k, the active width of a 4d MLP),
// k chosen per token ("topk", 0: the gating's own), the gating, the capacity factor (0: dropless),
// the weights of the balance, z, importance and load losses, router jitter, expert activation.
const std::vector<Field<SmoeOptions>>& smoe_fields() {
  using O = SmoeOptions;
  static const std::vector<Field<O>> f = {
      int_field("experts", &O::experts, fixed(8), 1, "E, experts per layer"),
      int_field("dim", &O::dim, fixed(0), 0, "m, hidden width of one expert (0: 4·d/k)"),
      int_field("topk", &O::topk, fixed(0), 0, "k, experts per token (0: the gating's own)"),
      choice_field("gating", &O::gating, Gating::Switch,
                   {Gating::Softmax, Gating::NoisyTopK, Gating::Switch, Gating::GShard},
                   gating_name,
                   "the gate: Shazeer softmax / noisy top-k, Switch top-1, GShard top-2"),
      number_field("capacity_factor", &O::capacity_factor, 0.0, 0, "CF (0: dropless)"),
      number_field("balance_weight", &O::balance_weight, 1e-2, 0, "α of the balance loss"),
      number_field("z_weight", &O::z_weight, 1e-3, 0, "weight of the router z-loss"),
      number_field("importance_weight", &O::importance_weight, 1e-2, 0,
                   "weight of L_importance (noisy_topk)"),
      number_field("load_weight", &O::load_weight, 1e-2, 0, "weight of L_load (noisy_topk)"),
      number_field("jitter", &O::jitter, 0.0, 0, "ε of the router input jitter (0: off)"),
      choice_field("activation", &O::activation, nn::Activation::ReLU2,
                   {nn::Activation::ReLU2, nn::Activation::GELU}, nn::activation_name,
                   "σ of the experts"),
  };
  return f;
}
}  // namespace

SmoeOptions SmoeOptions::defaults(int64_t d) {
  return options_at(smoe_fields(), d);
}

const FfnKind& smoe_kind() {
  static const FfnKind k = [] {
    FfnKind r = make_kind<SmoeOptions>(
        "smoe", "SMoE", "sparse mixture of experts: softmax / noisy top-k / Switch / GShard gating",
        smoe_fields(), [](const SmoeOptions& o, const BuildContext& c) -> FeedForwardFactory {
          return [o, c](int) {
            return std::make_shared<SmoeFeedForward>(o, *c.init, c.param, c.noise);
          };
        });
    r.has_experts = true;
    r.is_expert_param = [](std::string_view name) { return name == "w1" || name == "w2"; };
    r.n_key = "experts";
    r.table1 = FfnKind::Exponents{1.0, 1.0};
    r.sweep = [](int64_t sqrt_n) {  // Table 1: GShard top-2 over N experts of width 64, dropless
      return nlohmann::json{
          {"experts", sqrt_n * sqrt_n}, {"dim", 64}, {"gating", "gshard"}, {"capacity_factor", 0}};
    };
    return r;
  }();
  return k;
}

}  // namespace monet::moe
