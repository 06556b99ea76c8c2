// The MONET layers and the transformers against their PyTorch twin (eval/reference/monet_ref.py):
// the router in training and eval mode, the auxiliary losses, MONET-HD and MONET-VD as free
// functions and as modules, and the dense and MONET-VD transformers, each in F64 and in F32 on the
// golden files and tolerances of reference_golden.h. The router's kept sets are compared exactly
// (the generator made sure every |n − σ| > 1e-4, so rounding cannot flip one).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/ops.h"
#include "kernel_paths.h"
#include "monet/aux_loss.h"
#include "monet/monet_hd.h"
#include "monet/monet_layer.h"
#include "monet/monet_vd.h"
#include "monet/router.h"
#include "nn/transformer.h"
#include "reference_golden.h"
#include "train/model.h"

using namespace monet;
using namespace monet::moe;
using namespace monet::testing::golden;
using monet::testing::for_each_kernel_path;

namespace {

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
    for (const auto& [name, t] : router.named_parameters())
      copy_(t, g.raw("router." + name).to(dtype));
    for (const auto& [name, t] : router.named_buffers())
      copy_(t, g.raw(mode + "." + name).to(dtype));
  }
  router.train(mode == "train");

  // n itself, from the core's batch_norm on copies of the statistics (the router's own call
  // updates the real buffers below).
  Tensor x = g.get("x", dtype, true);
  const int64_t B = x.size(0), T = x.size(1), H = o.heads, S = o.sqrt_n;
  for (int r : {1, 2}) {
    NoGradGuard ng;
    const std::string k = std::to_string(r);
    Tensor z =
        matmul(x, transpose(g.get("router.w" + k + ".weight", dtype), 0, 1)).reshape({B, T, H, S});
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
      for (const auto& [name, t] : router.named_parameters())
        copy_(t, g.raw("router." + name).to(dtype));
    }
    Tensor x = g.get("x", dtype, true);
    Routing r = router.forward(x);
    const std::string w = which;
    Tensor loss = w == "unif" ? uniformity_loss(r) : ambiguity_loss(r);
    expect_close(w == "unif" ? "L_unif" : "L_amb", loss.reshape({1}), g.raw(w), tol);
    loss.backward();
    expect_close("grad_" + w + ".x", x.grad(), g.raw("grad_" + w + ".x"), tol);
    for (const auto& [name, p] : router.named_parameters())
      expect_close("grad_" + w + "." + name, grad_or_zeros(p),
                   g.raw("grad_" + w + ".router." + name), tol);
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
      vertical ? std::vector<std::string>{"u1.weight",  "u1.bias",    "u2.weight",  "u2.bias",
                                          "v11.weight", "v12.weight", "v21.weight", "v22.weight",
                                          "b1",         "b2"}
               : std::vector<std::string>{"u.weight", "u.bias", "v.weight", "b"};
  for (const auto& n : names) w[n] = g.get(n, dtype, true);
  Tensor y =
      vertical
          ? monet_vd(x,
                     {w["u1.weight"], w["u1.bias"], w["u2.weight"], w["u2.bias"], w["v11.weight"],
                      w["v12.weight"], w["v21.weight"], w["v22.weight"], w["b1"], w["b2"]},
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
  for (const auto& n : names)
    expect_close("grad." + n, grad_or_zeros(w[n]), g.raw("grad." + n), tol);
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
    m.ffn.kind = &moe::ffn_kind(g.meta("ffn"));
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
