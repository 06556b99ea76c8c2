// The sparse MoE layer against its PyTorch twin (eval/reference/monet_ref.py): Switch top-1 with
// capacity dropping, GShard top-2 dropless, noisy top-2 (the twin's ε injected) with slot-major
// capacity dropping, and dense softmax gating, as the free function smoe() and as SmoeFeedForward,
// each in F64 and in F32 on the golden files and tolerances of reference_golden.h. The chosen
// experts and the kept pairs are compared exactly.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/autograd.h"
#include "core/ops.h"
#include "kernel_paths.h"
#include "monet/smoe.h"
#include "nn/mlp.h"
#include "reference_golden.h"

using namespace monet;
using namespace monet::moe;
using namespace monet::testing::golden;
using monet::testing::for_each_kernel_path;

namespace {

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

}  // namespace

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
