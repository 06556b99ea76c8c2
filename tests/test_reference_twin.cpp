// The C++ layers against their PyTorch twin (eval/reference/monet_ref.py, written from the papers).
//
// eval/reference/gen_golden.py ran the twin on fixed small cases and stored inputs, weights,
// outputs and gradients in tests/data/ref_*.safetensors (inputs and weights are float32 values,
// outputs and gradients were computed in float64). Each test loads one file, runs the C++
// implementation on the same inputs and weights, in F64 and in F32, and compares every output and
// every gradient tensor by tensor, printing the largest absolute difference of each (as llm.c's
// test_gpt2 does). A tensor passes when max|got − want| ≤ rtol·max|want| + atol:
//   F64: rtol 1e-10 (the same math in double precision: only summation order differs)
//   F32: rtol 1e-5 (float32 rounding; the largest seen is ≈ 5e-7 of the tensor's largest value)
// The router's kept sets are compared exactly (the generator made sure every |n − σ| > 1e-4, so
// rounding cannot flip one). No PyTorch is needed here: only the committed files are read.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>
#include <string>

#include "core/autograd.h"
#include "core/ops.h"
#include "kernel_paths.h"
#include "moe/aux_loss.h"
#include "moe/monet_hd.h"
#include "moe/monet_layer.h"
#include "moe/monet_vd.h"
#include "moe/peer.h"
#include "moe/router.h"
#include "moe/smoe.h"
#include "nn/linear.h"
#include "nn/transformer.h"
#include "train/model.h"
#include "train/safetensors.h"

using namespace monet;
using namespace monet::moe;
using monet::testing::for_each_kernel_path;

namespace {

constexpr double kRtolF64 = 1e-10, kAtolF64 = 1e-13;
constexpr double kRtolF32 = 1e-5, kAtolF32 = 1e-7;

// One golden file: named tensors and the string metadata.
class Golden {
 public:
  explicit Golden(const std::string& file) : file_(file) {
    Safetensors st = load_safetensors(std::string(MONET_SOURCE_DIR) + "/tests/data/" + file);
    for (auto& [name, t] : st.tensors) tensors_.emplace(name, t);
    meta_ = st.metadata;
  }
  const std::string& file() const { return file_; }
  bool has(const std::string& name) const { return tensors_.count(name) > 0; }
  const Tensor& raw(const std::string& name) const {
    auto it = tensors_.find(name);
    MONET_CHECK(it != tensors_.end(), "{}: no tensor '{}'", file_, name);
    return it->second;
  }
  // A fresh copy in `dtype` (a new leaf, when `grad`).
  Tensor get(const std::string& name, DType dtype, bool grad = false) const {
    Tensor t = raw(name).to(dtype).contiguous();
    if (t.same(raw(name))) t = add(t, 0.0);  // a copy: the file's tensors stay untouched
    if (grad) t.requires_grad_();
    return t;
  }
  int64_t integer(const std::string& key) const { return std::stoll(meta(key)); }
  double number(const std::string& key) const { return std::stod(meta(key)); }
  const std::string& meta(const std::string& key) const {
    auto it = meta_.find(key);
    MONET_CHECK(it != meta_.end(), "{}: no metadata '{}'", file_, key);
    return it->second;
  }
  std::vector<std::string> names_with_prefix(const std::string& prefix) const {
    std::vector<std::string> out;
    for (const auto& [name, t] : tensors_)
      if (name.rfind(prefix, 0) == 0) out.push_back(name.substr(prefix.size()));
    return out;
  }

 private:
  std::string file_;
  std::map<std::string, Tensor> tensors_;
  Metadata meta_;
};

struct Tol {
  double rtol, atol;
};
Tol tol_for(DType t) { return t == DType::F64 ? Tol{kRtolF64, kAtolF64} : Tol{kRtolF32, kAtolF32}; }

// Compares one tensor and prints its line of the per-tensor table.
void expect_close(const std::string& what, const Tensor& got, const Tensor& want, Tol tol) {
  ASSERT_TRUE(got.defined()) << what << ": no tensor";
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const std::vector<double> a = got.detach().to(DType::F64).contiguous().to_vector<double>();
  const std::vector<double> b = want.to(DType::F64).contiguous().to_vector<double>();
  double diff = 0, scale = 0;
  size_t worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::isnan(a[i] - b[i]) ? INFINITY : std::abs(a[i] - b[i]);
    if (d > diff) {
      diff = d;
      worst = i;
    }
    scale = std::max(scale, std::abs(b[i]));
  }
  ASSERT_TRUE(std::isfinite(scale)) << what << ": the golden tensor is not finite";
  const double bound = tol.rtol * scale + tol.atol;
  fmt::print("  {:<44} max|diff| {:9.3e}  max|ref| {:9.3e}  {}\n", what, diff, scale,
             diff <= bound ? "ok" : "FAIL");
  EXPECT_LE(diff, bound) << what << ": element " << worst << " is " << a[worst] << ", the twin has "
                         << b[worst] << " (tolerance " << bound << ")";
}

Tensor grad_or_zeros(const Tensor& p) { return p.grad().defined() ? p.grad() : zeros_like(p); }

// Copies the golden tensors into a module's parameters and buffers of the same names. Every
// parameter must have a golden value and a golden gradient "grad.<name>".
void load_into(nn::Module& m, const Golden& g, const std::string& prefix = "") {
  NoGradGuard ng;
  for (const auto& list : {m.named_parameters(), m.named_buffers()})
    for (const auto& [name, t] : list) {
      ASSERT_TRUE(g.has(prefix + name)) << g.file() << " has no '" << prefix + name << "'";
      const Tensor& src = g.raw(prefix + name);
      ASSERT_EQ(src.shape(), t.shape()) << name;
      copy_(t, src.to(t.dtype()));
    }
}

// Every parameter's gradient against "grad.<prefix><name>", and the two name sets must be equal
// (so no parameter is left uncompared and no golden gradient is unmatched).
void expect_param_grads(const nn::Module& m, const Golden& g, Tol tol, const std::string& prefix = "",
                        const std::set<std::string>& extra = {"x"}) {
  std::set<std::string> golden;
  for (const auto& n : g.names_with_prefix("grad." + prefix))
    if (!extra.count(n)) golden.insert(n);
  std::set<std::string> mine;
  for (const auto& [name, p] : m.named_parameters()) {
    mine.insert(name);
    ASSERT_TRUE(g.has("grad." + prefix + name)) << "no golden gradient for " << name;
    expect_close("grad." + name, grad_or_zeros(p), g.raw("grad." + prefix + name), tol);
  }
  EXPECT_EQ(mine, golden) << "parameter names differ from the twin's";
}

void expect_kept_set(const std::string& what, const Tensor& g, const Tensor& keep) {
  const std::vector<double> p = g.detach().to(DType::F64).contiguous().to_vector<double>();
  const std::vector<int32_t> k = keep.contiguous().to_vector<int32_t>();
  ASSERT_EQ(p.size(), k.size());
  int64_t mismatches = 0, kept = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    kept += k[i];
    if ((p[i] > 0) != (k[i] != 0)) {
      if (++mismatches <= 5)
        ADD_FAILURE() << what << ": flat index " << i << " is " << (p[i] > 0 ? "kept" : "masked")
                      << " in C++ (g = " << p[i] << ") but " << (k[i] ? "kept" : "masked")
                      << " by the twin";
    }
  }
  fmt::print("  {:<44} kept {} of {}, {} mismatches\n", what + " kept set", kept, p.size(),
             mismatches);
  EXPECT_EQ(mismatches, 0) << what;
}

MonetOptions monet_options(const Golden& g, bool vertical) {
  MonetOptions o = MonetOptions::defaults(g.integer("d"), vertical);
  o.heads = g.integer("heads");
  o.sqrt_n = g.integer("sqrt_n");
  o.dim = g.integer("dim");
  o.topk = g.integer("topk");
  o.group = 1;
  o.vertical = vertical;
  return o;
}

// ---- the router -----------------------------------------------------------------------------

void run_router(const std::string& mode, DType dtype) {
  Golden g("ref_router.safetensors");
  const Tol tol = tol_for(dtype);
  fmt::print("router, {} mode, {}:\n", mode, dtype_name(dtype));
  const double sigma = routing_threshold(g.integer("topk"), g.integer("sqrt_n"));
  EXPECT_NEAR(sigma, g.number("sigma"), 1e-12) << "σ = Φ⁻¹(1 − k/√N)";

  MonetOptions o = monet_options(g, true);
  Generator gen(1);
  MonetRouter router(o, gen, {dtype, Device::cpu(), 0.02});
  {
    NoGradGuard ng;
    for (const auto& [name, t] : router.named_parameters()) copy_(t, g.raw("router." + name).to(dtype));
    for (const auto& [name, t] : router.named_buffers()) copy_(t, g.raw(mode + "." + name).to(dtype));
  }
  router.train(mode == "train");

  // n itself, from the core's batch_norm on copies of the statistics (the router's own call
  // updates the real buffers below).
  Tensor x = g.get("x", dtype, true);
  const int64_t B = x.size(0), T = x.size(1), H = o.heads, S = o.sqrt_n;
  for (int r : {1, 2}) {
    NoGradGuard ng;
    const std::string k = std::to_string(r);
    Tensor z = matmul(x, transpose(g.get("router.w" + k + ".weight", dtype), 0, 1)).reshape({B, T, H, S});
    Tensor n = batch_norm(z, 2, g.get(mode + ".norm" + k + ".running_mean", dtype),
                          g.get(mode + ".norm" + k + ".running_var", dtype), mode == "train");
    expect_close("n" + k + " (BatchNorm of z" + k + ")", n, g.raw(mode + ".n" + k), tol);
  }

  Routing r = router.forward(x);
  expect_kept_set("g1", r.g1, g.raw(mode + ".keep1"));
  expect_kept_set("g2", r.g2, g.raw(mode + ".keep2"));
  expect_close("g1", r.g1, g.raw(mode + ".g1"), tol);
  expect_close("g2", r.g2, g.raw(mode + ".g2"), tol);
  for (const auto& [name, t] : router.named_buffers())
    expect_close(name + " (after)", t, g.raw(mode + "." + name + ".after"), tol);

  add(sum(mul(r.g1, g.get("c1", dtype))), sum(mul(r.g2, g.get("c2", dtype)))).backward();
  expect_close("grad.x", x.grad(), g.raw(mode + ".grad.x"), tol);
  for (const auto& [name, p] : router.named_parameters())
    expect_close("grad." + name, grad_or_zeros(p), g.raw(mode + ".grad.router." + name), tol);
}

// ---- the auxiliary losses -------------------------------------------------------------------

void run_aux(DType dtype) {
  Golden g("ref_aux_loss.safetensors");
  const Tol tol = tol_for(dtype);
  fmt::print("aux losses, {}:\n", dtype_name(dtype));
  MonetOptions o = monet_options(g, true);
  for (const char* which : {"unif", "amb"}) {
    Generator gen(1);
    MonetRouter router(o, gen, {dtype, Device::cpu(), 0.02});  // running stats 0 / 1, training
    {
      NoGradGuard ng;
      for (const auto& [name, t] : router.named_parameters()) copy_(t, g.raw("router." + name).to(dtype));
    }
    Tensor x = g.get("x", dtype, true);
    Routing r = router.forward(x);
    const std::string w = which;
    Tensor loss = w == "unif" ? uniformity_loss(r) : ambiguity_loss(r);
    expect_close(w == "unif" ? "L_unif" : "L_amb", loss.reshape({1}), g.raw(w), tol);
    loss.backward();
    expect_close("grad_" + w + ".x", x.grad(), g.raw("grad_" + w + ".x"), tol);
    for (const auto& [name, p] : router.named_parameters())
      expect_close("grad_" + w + "." + name, grad_or_zeros(p), g.raw("grad_" + w + ".router." + name),
                   tol);
  }
}

// ---- MONET-HD and MONET-VD ------------------------------------------------------------------

// The free functions (router module → monet_hd / monet_vd) on leaves taken from the file.
void run_layer_functions(bool vertical, DType dtype) {
  Golden g(vertical ? "ref_monet_vd.safetensors" : "ref_monet_hd.safetensors");
  const Tol tol = tol_for(dtype);
  fmt::print("monet_{} (functions), {}:\n", vertical ? "vd" : "hd", dtype_name(dtype));
  MonetOptions o = monet_options(g, vertical);
  Generator gen(1);
  MonetRouter router(o, gen, {dtype, Device::cpu(), 0.02});
  load_into(router, g, "router.");
  Tensor x = g.get("x", dtype, true);
  Routing r = router.forward(x);
  std::map<std::string, Tensor> w;
  const std::vector<std::string> names =
      vertical ? std::vector<std::string>{"u1.weight", "u1.bias", "u2.weight", "u2.bias", "v11.weight",
                                          "v12.weight", "v21.weight", "v22.weight", "b1", "b2"}
               : std::vector<std::string>{"u.weight", "u.bias", "v.weight", "b"};
  for (const auto& n : names) w[n] = g.get(n, dtype, true);
  Tensor y = vertical ? monet_vd(x, {w["u1.weight"], w["u1.bias"], w["u2.weight"], w["u2.bias"],
                                     w["v11.weight"], w["v12.weight"], w["v21.weight"],
                                     w["v22.weight"], w["b1"], w["b2"]},
                                 r)
                      : monet_hd(x, {w["u.weight"], w["u.bias"], w["v.weight"], w["b"]}, r);
  expect_close("g1", r.g1, g.raw("g1"), tol);
  expect_close("g2", r.g2, g.raw("g2"), tol);
  expect_close("y", y, g.raw("y"), tol);
  expect_close("L_amb", ambiguity_loss(r).reshape({1}), g.raw("amb"), tol);
  sum(mul(y, g.get("dy", dtype))).backward();
  expect_close("grad.x", x.grad(), g.raw("grad.x"), tol);
  for (const auto& [name, p] : router.named_parameters())
    expect_close("grad.router." + name, grad_or_zeros(p), g.raw("grad.router." + name), tol);
  for (const auto& n : names) expect_close("grad." + n, grad_or_zeros(w[n]), g.raw("grad." + n), tol);
}

// The whole layer (MonetFeedForward, owner of its router), weights copied by parameter name.
void run_layer_module(bool vertical, DType dtype) {
  Golden g(vertical ? "ref_monet_vd.safetensors" : "ref_monet_hd.safetensors");
  const Tol tol = tol_for(dtype);
  fmt::print("monet_{} (MonetFeedForward), {}:\n", vertical ? "vd" : "hd", dtype_name(dtype));
  MonetOptions o = monet_options(g, vertical);
  Generator gen(1);
  MonetFeedForward layer(o, 0, std::make_shared<RoutingGroup>(), gen, {dtype, Device::cpu(), 0.02});
  load_into(layer, g);
  layer.train();
  Tensor x = g.get("x", dtype, true);
  Tensor y = layer.forward(x);
  expect_close("y", y, g.raw("y"), tol);
  expect_close("g1", layer.last_routing().g1, g.raw("g1"), tol);
  expect_close("g2", layer.last_routing().g2, g.raw("g2"), tol);
  // The logged parts of the aux loss. L_unif is not compared here: some sub-experts are kept by
  // none of these 10 tokens, where the paper's L_unif is infinite and the C++ clamps ḡ at 1e-9
  // (aux_loss.h); ReferenceAuxLoss compares it on a batch that uses every sub-expert.
  std::map<std::string, double> metrics;
  for (const auto& [name, value] : layer.metrics()) metrics[name] = value;
  ASSERT_TRUE(metrics.count("uniformity") && metrics.count("ambiguity"));
  const double amb = g.raw("amb").item(), unif = metrics["uniformity"];
  EXPECT_NEAR(metrics["ambiguity"], amb, tol.rtol * amb + tol.atol);
  EXPECT_TRUE(std::isfinite(unif));
  ASSERT_TRUE(layer.aux_loss().defined());
  EXPECT_NEAR(layer.aux_loss().item(), o.aux_weight * (unif + amb),
              tol.rtol * o.aux_weight * (unif + amb) + tol.atol);
  for (const auto& [name, t] : layer.named_buffers())
    expect_close(name + " (after)", t, g.raw(name + ".after"), tol);
  sum(mul(y, g.get("dy", dtype))).backward();
  expect_close("grad.x", x.grad(), g.raw("grad.x"), tol);
  expect_param_grads(layer, g, tol);
}

// ---- transformers ---------------------------------------------------------------------------

void run_transformer(const std::string& file, DType dtype) {
  Golden g(file);
  const Tol tol = tol_for(dtype);
  const bool monet_ffn = g.meta("ffn") != "dense";
  fmt::print("{} ({}), {}:\n", file, g.meta("ffn"), dtype_name(dtype));

  std::shared_ptr<nn::Transformer> model;
  Generator gen(1);
  if (!monet_ffn) {
    nn::TransformerConfig c;
    c.vocab = g.integer("vocab");
    c.d_model = g.integer("d");
    c.n_layers = g.integer("layers");
    c.n_heads = g.integer("heads");
    c.context = g.integer("T");
    c.norm_eps = g.number("norm_eps");
    c.rope_theta = g.number("theta");
    c.mlp_activation = nn::parse_activation(g.meta("activation"));
    c.mlp_hidden = g.integer("hidden");
    c.dtype = dtype;
    model = std::make_shared<nn::Transformer>(c, gen);
  } else {
    // Through the training code's own builder, so the routing-group wiring is the real one.
    ModelConfig m;
    m.vocab = g.integer("vocab");
    m.d = g.integer("d");
    m.layers = g.integer("layers");
    m.heads = g.integer("heads");
    m.context = g.integer("T");
    m.norm_eps = g.number("norm_eps");
    m.ffn.kind = g.meta("ffn");
    m.ffn.params = {{"heads", g.integer("monet_heads")}, {"sqrt_n", g.integer("sqrt_n")},
                    {"dim", g.integer("dim")},           {"topk", g.integer("topk")},
                    {"group", g.integer("group")},       {"aux_weight", g.number("aux_weight")}};
    model = build_model(m, gen, dtype);
    EXPECT_EQ(model->config().rope_theta, g.number("theta"));
  }
  load_into(*model, g);
  model->train();

  Tensor ids = g.raw("ids"), targets = g.raw("targets");
  Tensor logits = model->forward(ids);
  Tensor ce = cross_entropy(logits, targets);
  Tensor loss = ce;
  if (monet_ffn) {
    Tensor aux = model->aux_loss();
    ASSERT_TRUE(aux.defined());
    expect_close("aux", aux.reshape({1}), g.raw("aux"), tol);
    loss = add(ce, aux);
  }
  expect_close("logits", logits, g.raw("logits"), tol);
  expect_close("ce", ce.reshape({1}), g.raw("ce"), tol);
  expect_close("loss", loss.reshape({1}), g.raw("loss"), tol);
  for (const auto& [name, t] : model->named_buffers())
    expect_close(name + " (after)", t, g.raw(name + ".after"), tol);
  loss.backward();
  expect_param_grads(*model, g, tol, "", {});
}

// ---- integer tensors (chosen experts, kept pairs): equal, element by element ----------------

void expect_equal_ints(const std::string& what, const Tensor& got, const Tensor& want) {
  ASSERT_TRUE(got.defined()) << what << ": no tensor";
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const std::vector<int32_t> a = got.to(DType::I32).contiguous().to_vector<int32_t>();
  const std::vector<int32_t> b = want.to(DType::I32).contiguous().to_vector<int32_t>();
  int64_t mismatches = 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i] != b[i] && ++mismatches <= 5)
      ADD_FAILURE() << what << ": flat index " << i << " is " << a[i] << " in C++, " << b[i]
                    << " in the twin";
  fmt::print("  {:<44} {} values, {} mismatches\n", what, a.size(), mismatches);
  EXPECT_EQ(mismatches, 0) << what;
}

// ---- sparse MoE -----------------------------------------------------------------------------

SmoeOptions smoe_options(const Golden& g) {
  SmoeOptions o = SmoeOptions::defaults(g.integer("d"));
  o.experts = g.integer("experts");
  o.dim = g.integer("dim");
  o.topk = g.integer("topk");
  o.gating = parse_gating(g.meta("gating"));
  o.capacity_factor = g.number("capacity_factor");
  o.balance_weight = g.number("balance_weight");
  o.z_weight = g.number("z_weight");
  o.importance_weight = g.number("importance_weight");
  o.load_weight = g.number("load_weight");
  o.activation = nn::parse_activation(g.meta("activation"));
  o.validate();
  return o;
}

const std::vector<std::pair<std::string, Tensor Route::*>> kSmoeParts = {
    {"importance_cv2", &Route::importance_cv2},
    {"load_cv2", &Route::load_cv2},
    {"balance", &Route::balance},
    {"z_loss", &Route::z_loss}};

// The free function smoe() on leaves taken from the file; noisy_topk gets the twin's ε injected.
void run_smoe_function(const std::string& name, DType dtype) {
  Golden g("ref_smoe_" + name + ".safetensors");
  const Tol tol = tol_for(dtype);
  fmt::print("smoe {} (function), {}:\n", name, dtype_name(dtype));
  const SmoeOptions o = smoe_options(g);
  Tensor x = g.get("x", dtype, true);
  const int64_t B = x.size(0), T = x.size(1), d = x.size(2);
  std::map<std::string, Tensor> w;
  for (const char* n : {"gate.weight", "noise.weight", "w1", "w2"})
    if (g.has(n)) w[n] = g.get(n, dtype, true);
  EXPECT_EQ(g.has("noise.weight"), o.gating == Gating::NoisyTopK);
  const GateWeights gw{w["gate.weight"], w.count("noise.weight") ? w["noise.weight"] : Tensor()};
  const Tensor eps = g.has("eps") ? g.get("eps", dtype) : Tensor();
  SmoeResult r = smoe(reshape(x, {B * T, d}), gw, {w["w1"], w["w2"]}, o, true, nullptr, {}, eps);

  expect_equal_ints("idx (chosen experts)", r.route.idx, g.raw("idx"));
  if (o.capacity_factor > 0) {  // the kept pairs, from the dispatch's own capacity plan
    const CapacityPlan plan =
        plan_capacity(r.route.idx.to_vector<int32_t>(), B * T, o.k(), o.experts, r.stats.capacity);
    std::vector<int32_t> kept;
    for (int32_t p : plan.position) kept.push_back(p >= 0 && p < plan.capacity);
    expect_equal_ints("keep (pairs within capacity)", from_vector(kept, r.route.idx.shape()),
                      g.raw("keep"));
  }
  EXPECT_EQ(r.stats.capacity, g.integer("capacity"));
  EXPECT_EQ(r.stats.dropped, g.integer("dropped"));
  EXPECT_EQ(r.stats.dropped_tokens, g.integer("dropped_tokens"));
  expect_close("logits", r.route.logits, g.raw("logits"), tol);
  expect_close("gates", r.route.gates, g.raw("gates"), tol);
  expect_close("y", reshape(r.y, {B, T, d}), g.raw("y"), tol);
  for (const auto& [part, field] : kSmoeParts) {
    const Tensor& mine = r.route.*field;
    EXPECT_EQ(mine.defined(), g.has(part)) << part;
    if (mine.defined() && g.has(part)) expect_close(part, mine.reshape({1}), g.raw(part), tol);
  }
  Tensor loss = sum(mul(reshape(r.y, {B, T, d}), g.get("dy", dtype)));
  const Tensor aux = weighted_aux_loss(r.route, o);
  EXPECT_EQ(aux.defined(), g.has("aux"));
  if (aux.defined()) {
    expect_close("aux (weighted)", aux.reshape({1}), g.raw("aux"), tol);
    loss = add(loss, aux);
  }
  expect_close("loss", loss.reshape({1}), g.raw("loss"), tol);
  loss.backward();
  expect_close("grad.x", x.grad(), g.raw("grad.x"), tol);
  std::set<std::string> golden, mine;
  for (const auto& n : g.names_with_prefix("grad."))
    if (n != "x") golden.insert(n);
  for (const auto& [n, t] : w) {
    mine.insert(n);
    expect_close("grad." + n, grad_or_zeros(t), g.raw("grad." + n), tol);
  }
  EXPECT_EQ(mine, golden);
}

// The layer (SmoeFeedForward), weights copied by parameter name. Not for noisy_topk: the layer
// draws its own ε (the function test injects the twin's).
void run_smoe_module(const std::string& name, DType dtype) {
  Golden g("ref_smoe_" + name + ".safetensors");
  const Tol tol = tol_for(dtype);
  fmt::print("smoe {} (SmoeFeedForward), {}:\n", name, dtype_name(dtype));
  const SmoeOptions o = smoe_options(g);
  ASSERT_NE(o.gating, Gating::NoisyTopK);
  Generator gen(1);
  SmoeFeedForward layer(o, gen, {dtype, Device::cpu(), 0.02});
  load_into(layer, g);
  layer.train();
  Tensor x = g.get("x", dtype, true);
  Tensor y = layer.forward(x);
  expect_close("y", y, g.raw("y"), tol);
  std::map<std::string, double> metrics = layer.last_metrics();
  for (const auto& [part, field] : kSmoeParts) {
    EXPECT_EQ(metrics.count(part) > 0, g.has(part)) << part;
    if (g.has(part)) {
      const double want = g.raw(part).item();
      EXPECT_NEAR(metrics[part], want, tol.rtol * std::abs(want) + tol.atol) << part;
    }
  }
  const double assigned = static_cast<double>(g.raw("idx").numel());
  EXPECT_NEAR(metrics["dropped_fraction"], g.number("dropped") / assigned, 1e-12);
  Tensor loss = sum(mul(y, g.get("dy", dtype)));
  EXPECT_EQ(layer.aux_loss().defined(), g.has("aux"));
  if (layer.aux_loss().defined()) {
    expect_close("aux (weighted)", layer.aux_loss().reshape({1}), g.raw("aux"), tol);
    loss = add(loss, layer.aux_loss());
  }
  expect_close("loss", loss.reshape({1}), g.raw("loss"), tol);
  loss.backward();
  expect_close("grad.x", x.grad(), g.raw("grad.x"), tol);
  expect_param_grads(layer, g, tol);
}

// ---- PEER -----------------------------------------------------------------------------------

PeerOptions peer_options(const Golden& g) {
  PeerOptions o = PeerOptions::defaults(g.integer("d"));
  o.sqrt_n = g.integer("sqrt_n");
  o.heads = g.integer("heads");
  o.topk = g.integer("topk");
  o.d_query = g.integer("d_query");
  o.activation = nn::parse_activation(g.meta("activation"));
  o.score = g.meta("score") == "softmax" ? PeerScore::Softmax : PeerScore::Sigmoid;
  o.query_batchnorm = g.integer("query_batchnorm") != 0;
  o.validate();
  return o;
}

// The free functions (query, batch_norm, product_key_topk, peer_gates, peer_experts_gather).
void run_peer_functions(const std::string& name, DType dtype) {
  Golden g("ref_peer_" + name + ".safetensors");
  const Tol tol = tol_for(dtype);
  fmt::print("peer {} (functions, gather path), {}:\n", name, dtype_name(dtype));
  const PeerOptions o = peer_options(g);
  Tensor x = g.get("x", dtype, true);
  const int64_t B = x.size(0), T = x.size(1);
  std::map<std::string, Tensor> w;
  for (const char* n : {"query.weight", "keys1", "keys2", "u", "v"}) w[n] = g.get(n, dtype, true);
  Tensor q = nn::linear(x, w["query.weight"]);
  if (o.query_batchnorm) {
    Tensor rm = g.get("query_norm.running_mean", dtype),
           rv = g.get("query_norm.running_var", dtype);
    q = batch_norm(q, 2, rm, rv, true);
    expect_close("query_norm.running_mean (after)", rm, g.raw("query_norm.running_mean.after"),
                 tol);
    expect_close("query_norm.running_var (after)", rv, g.raw("query_norm.running_var.after"), tol);
  }
  q = q.reshape({B, T, o.heads, o.d_query});
  expect_close("q", q, g.raw("q"), tol);
  PeerRetrieval r = product_key_topk(q, w["keys1"], w["keys2"], o.topk);
  expect_equal_ints("indices (retrieved experts)", r.indices, g.raw("indices"));
  expect_close("scores", r.scores, g.raw("scores"), tol);
  Tensor gates = peer_gates(r.scores, o.score);
  expect_close("gates", gates, g.raw("gates"), tol);
  Tensor y = peer_experts_gather(x, w["u"], w["v"], r.indices, gates, o.activation);
  expect_close("y", y, g.raw("y"), tol);
  sum(mul(y, g.get("dy", dtype))).backward();
  expect_close("grad.x", x.grad(), g.raw("grad.x"), tol);
  for (const auto& [n, t] : w) expect_close("grad." + n, grad_or_zeros(t), g.raw("grad." + n), tol);
}

// The layer (PeerFeedForward, fused CPU expert path), weights copied by parameter name.
void run_peer_module(const std::string& name, DType dtype) {
  Golden g("ref_peer_" + name + ".safetensors");
  const Tol tol = tol_for(dtype);
  fmt::print("peer {} (PeerFeedForward), {}:\n", name, dtype_name(dtype));
  const PeerOptions o = peer_options(g);
  Generator gen(1);
  PeerFeedForward layer(o, gen, {dtype, Device::cpu(), 0.02});
  load_into(layer, g);
  layer.train();
  Tensor x = g.get("x", dtype, true);
  Tensor y = layer.forward(x);
  expect_equal_ints("indices (retrieved experts)", layer.last_retrieval().indices,
                    g.raw("indices"));
  expect_close("scores", layer.last_retrieval().scores, g.raw("scores"), tol);
  expect_close("gates", layer.last_retrieval().gates, g.raw("gates"), tol);
  expect_close("y", y, g.raw("y"), tol);
  for (const auto& [n, t] : layer.named_buffers())
    expect_close(n + " (after)", t, g.raw(n + ".after"), tol);
  sum(mul(y, g.get("dy", dtype))).backward();
  expect_close("grad.x", x.grad(), g.raw("grad.x"), tol);
  expect_param_grads(layer, g, tol);
}

}  // namespace

TEST(ReferenceRouter, TrainModeF64) {
  for_each_kernel_path([] { run_router("train", DType::F64); });
}
TEST(ReferenceRouter, TrainModeF32) {
  for_each_kernel_path([] { run_router("train", DType::F32); });
}
TEST(ReferenceRouter, EvalModeF64) {
  for_each_kernel_path([] { run_router("eval", DType::F64); });
}
TEST(ReferenceRouter, EvalModeF32) {
  for_each_kernel_path([] { run_router("eval", DType::F32); });
}

TEST(ReferenceAuxLoss, F64) {
  for_each_kernel_path([] { run_aux(DType::F64); });
}
TEST(ReferenceAuxLoss, F32) {
  for_each_kernel_path([] { run_aux(DType::F32); });
}

TEST(ReferenceMonetHd, FunctionsF64) {
  for_each_kernel_path([] { run_layer_functions(false, DType::F64); });
}
TEST(ReferenceMonetHd, FunctionsF32) {
  for_each_kernel_path([] { run_layer_functions(false, DType::F32); });
}
TEST(ReferenceMonetHd, ModuleF64) {
  for_each_kernel_path([] { run_layer_module(false, DType::F64); });
}
TEST(ReferenceMonetHd, ModuleF32) {
  for_each_kernel_path([] { run_layer_module(false, DType::F32); });
}

TEST(ReferenceMonetVd, FunctionsF64) {
  for_each_kernel_path([] { run_layer_functions(true, DType::F64); });
}
TEST(ReferenceMonetVd, FunctionsF32) {
  for_each_kernel_path([] { run_layer_functions(true, DType::F32); });
}
TEST(ReferenceMonetVd, ModuleF64) {
  for_each_kernel_path([] { run_layer_module(true, DType::F64); });
}
TEST(ReferenceMonetVd, ModuleF32) {
  for_each_kernel_path([] { run_layer_module(true, DType::F32); });
}

TEST(ReferenceTransformer, DenseF64) {
  for_each_kernel_path([] { run_transformer("ref_transformer.safetensors", DType::F64); });
}
TEST(ReferenceTransformer, DenseF32) {
  for_each_kernel_path([] { run_transformer("ref_transformer.safetensors", DType::F32); });
}
TEST(ReferenceTransformer, MonetVdF64) {
  for_each_kernel_path([] { run_transformer("ref_monet_transformer.safetensors", DType::F64); });
}
TEST(ReferenceTransformer, MonetVdF32) {
  for_each_kernel_path([] { run_transformer("ref_monet_transformer.safetensors", DType::F32); });
}

// Sparse MoE: Switch top-1 with capacity dropping, GShard top-2 dropless, noisy top-2 (the twin's
// ε injected) with slot-major capacity dropping, dense softmax gating.
TEST(ReferenceSmoe, SwitchCapacityFunctionF64) {
  for_each_kernel_path([] { run_smoe_function("switch", DType::F64); });
}
TEST(ReferenceSmoe, SwitchCapacityFunctionF32) {
  for_each_kernel_path([] { run_smoe_function("switch", DType::F32); });
}
TEST(ReferenceSmoe, SwitchCapacityModuleF64) {
  for_each_kernel_path([] { run_smoe_module("switch", DType::F64); });
}
TEST(ReferenceSmoe, SwitchCapacityModuleF32) {
  for_each_kernel_path([] { run_smoe_module("switch", DType::F32); });
}
TEST(ReferenceSmoe, GShardDroplessFunctionF64) {
  for_each_kernel_path([] { run_smoe_function("gshard", DType::F64); });
}
TEST(ReferenceSmoe, GShardDroplessFunctionF32) {
  for_each_kernel_path([] { run_smoe_function("gshard", DType::F32); });
}
TEST(ReferenceSmoe, GShardDroplessModuleF64) {
  for_each_kernel_path([] { run_smoe_module("gshard", DType::F64); });
}
TEST(ReferenceSmoe, GShardDroplessModuleF32) {
  for_each_kernel_path([] { run_smoe_module("gshard", DType::F32); });
}
TEST(ReferenceSmoe, NoisyTopKFunctionF64) {
  for_each_kernel_path([] { run_smoe_function("noisy_topk", DType::F64); });
}
TEST(ReferenceSmoe, NoisyTopKFunctionF32) {
  for_each_kernel_path([] { run_smoe_function("noisy_topk", DType::F32); });
}
TEST(ReferenceSmoe, SoftmaxFunctionF64) {
  for_each_kernel_path([] { run_smoe_function("softmax", DType::F64); });
}
TEST(ReferenceSmoe, SoftmaxFunctionF32) {
  for_each_kernel_path([] { run_smoe_function("softmax", DType::F32); });
}
TEST(ReferenceSmoe, SoftmaxModuleF64) {
  for_each_kernel_path([] { run_smoe_module("softmax", DType::F64); });
}
TEST(ReferenceSmoe, SoftmaxModuleF32) {
  for_each_kernel_path([] { run_smoe_module("softmax", DType::F32); });
}

// PEER: softmax and sigmoid scores, with and without query BatchNorm (training mode).
TEST(ReferencePeer, SoftmaxBatchNormFunctionsF64) {
  for_each_kernel_path([] { run_peer_functions("softmax_bn", DType::F64); });
}
TEST(ReferencePeer, SoftmaxBatchNormFunctionsF32) {
  for_each_kernel_path([] { run_peer_functions("softmax_bn", DType::F32); });
}
TEST(ReferencePeer, SoftmaxBatchNormModuleF64) {
  for_each_kernel_path([] { run_peer_module("softmax_bn", DType::F64); });
}
TEST(ReferencePeer, SoftmaxBatchNormModuleF32) {
  for_each_kernel_path([] { run_peer_module("softmax_bn", DType::F32); });
}
TEST(ReferencePeer, SigmoidBatchNormFunctionsF64) {
  for_each_kernel_path([] { run_peer_functions("sigmoid_bn", DType::F64); });
}
TEST(ReferencePeer, SigmoidBatchNormFunctionsF32) {
  for_each_kernel_path([] { run_peer_functions("sigmoid_bn", DType::F32); });
}
TEST(ReferencePeer, SigmoidBatchNormModuleF64) {
  for_each_kernel_path([] { run_peer_module("sigmoid_bn", DType::F64); });
}
TEST(ReferencePeer, SigmoidBatchNormModuleF32) {
  for_each_kernel_path([] { run_peer_module("sigmoid_bn", DType::F32); });
}
TEST(ReferencePeer, SoftmaxFunctionsF64) {
  for_each_kernel_path([] { run_peer_functions("softmax", DType::F64); });
}
TEST(ReferencePeer, SoftmaxFunctionsF32) {
  for_each_kernel_path([] { run_peer_functions("softmax", DType::F32); });
}
TEST(ReferencePeer, SoftmaxModuleF64) {
  for_each_kernel_path([] { run_peer_module("softmax", DType::F64); });
}
TEST(ReferencePeer, SoftmaxModuleF32) {
  for_each_kernel_path([] { run_peer_module("softmax", DType::F32); });
}
TEST(ReferencePeer, SigmoidFunctionsF64) {
  for_each_kernel_path([] { run_peer_functions("sigmoid", DType::F64); });
}
TEST(ReferencePeer, SigmoidFunctionsF32) {
  for_each_kernel_path([] { run_peer_functions("sigmoid", DType::F32); });
}
TEST(ReferencePeer, SigmoidModuleF64) {
  for_each_kernel_path([] { run_peer_module("sigmoid", DType::F64); });
}
TEST(ReferencePeer, SigmoidModuleF32) {
  for_each_kernel_path([] { run_peer_module("sigmoid", DType::F32); });
}
