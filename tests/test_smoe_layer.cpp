// The SMoE layer (SmoeFeedForward): parameter names, shapes and initialisation; noisy top-k's noise
// drawn only in training and reproducible; expert removal equal to the per-token reference of
// smoe_reference.h without that expert; the dropped fractions and aux-loss parts it reports; the
// backward reaching every parameter; and the same layer on a CUDA device (skipped without one).
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>

#include "core/autograd.h"
#include "monet/smoe.h"
#include "smoe_reference.h"
#ifdef MONET_WITH_CUDA
#include "core/cuda/device.h"
#endif

using namespace monet;
using namespace monet::moe;
using namespace monet::testing::smoe_reference;

// ---- the layer ----

TEST(SmoeLayer, ParameterNamesShapesAndInit) {
  Generator gen(40);
  SmoeOptions o = SmoeOptions::defaults(16);
  o.experts = 4;
  o.gating = parse_gating("noisy_topk");
  SmoeFeedForward layer(o, gen);
  EXPECT_EQ(o.k(), 2);
  EXPECT_EQ(o.hidden(), 32);  // 4·d / k: a 4d MLP's active width
  auto params = layer.named_parameters();
  ASSERT_EQ(params.size(), 4u);
  EXPECT_EQ(params[0].first, "gate.weight");
  EXPECT_EQ(params[0].second.shape(), (Shape{4, 16}));
  EXPECT_EQ(params[1].first, "noise.weight");
  EXPECT_EQ(params[2].first, "w1");
  EXPECT_EQ(params[2].second.shape(), (Shape{4, 32, 16}));
  EXPECT_EQ(params[3].first, "w2");
  EXPECT_EQ(params[3].second.shape(), (Shape{4, 16, 32}));
  for (float v : params[0].second.to_vector<float>()) EXPECT_EQ(v, 0.0f);  // W_g, W_noise = 0
  for (float v : params[1].second.to_vector<float>()) EXPECT_EQ(v, 0.0f);
  double ss = 0;
  for (float v : params[2].second.to_vector<float>()) ss += v * v;
  EXPECT_NEAR(std::sqrt(ss / 2048), 0.02, 0.002);
  o.gating = parse_gating("switch");
  o.topk = 0;
  SmoeFeedForward sw(o, gen);
  EXPECT_EQ(sw.named_parameters().size(), 3u);
  EXPECT_EQ(sw.options().hidden(), 64);
  // Bad options name their field.
  o.topk = 2;
  EXPECT_THROW(SmoeFeedForward(o, gen), Error);
  o.topk = 0;
  EXPECT_THROW(parse_gating("top3"), Error);
}

TEST(SmoeLayer, NoisyTopKNoiseOnlyInTrainingAndReproducible) {
  SmoeOptions o = small_options("noisy_topk");
  Generator init(41), data(42);
  Generator noise(7);
  SmoeFeedForward layer(o, init, {DType::F64}, &noise);
  copy_(layer.gate_weights().gate, rnd({E, D}, data));
  copy_(layer.gate_weights().noise, rnd({E, D}, data));
  Tensor x = rnd({2, 4, D}, data, 1.0);
  NoGradGuard ng;
  layer.eval();
  const auto s0 = noise.state();
  std::vector<double> e1 = layer.forward(x).to_vector<double>();
  std::vector<double> e2 = layer.forward(x).to_vector<double>();
  EXPECT_EQ(e1, e2);
  EXPECT_EQ(noise.state(), s0);  // eval draws nothing
  EXPECT_FALSE(layer.aux_loss().defined());
  layer.train();
  std::vector<double> t1 = layer.forward(x).to_vector<double>();
  EXPECT_NE(noise.state(), s0);
  EXPECT_NE(t1, e1);
  std::vector<double> t2 = layer.forward(x).to_vector<double>();
  EXPECT_NE(t2, t1);    // fresh noise each step
  noise.set_state(s0);  // a resumed run draws the same noise
  EXPECT_EQ(layer.forward(x).to_vector<double>(), t1);
  EXPECT_TRUE(layer.aux_loss().defined());
  EXPECT_GT(layer.last_metrics().at("load_cv2"), 0.0);
  layer.set_noise_generator(nullptr);
  EXPECT_THROW(layer.forward(x), Error);  // training needs a generator
}

TEST(SmoeLayer, ExpertMaskRemovesExactlyThatContribution) {
  SmoeOptions o = small_options("gshard");
  Generator init(43), data(44);
  SmoeFeedForward layer(o, init, {DType::F64});
  copy_(layer.gate_weights().gate, rnd({E, D}, data, 1.0));
  Tensor x = rnd({1, N, D}, data, 1.0);
  NoGradGuard ng;
  Route r = route(reshape(x, {N, D}), layer.gate_weights(), o, true, nullptr);
  std::vector<int32_t> idx = r.idx.to_vector<int32_t>();
  std::vector<bool> keep(idx.size());
  for (size_t p = 0; p < idx.size(); ++p) keep[p] = idx[p] != 2;
  Tensor want = reference_moe(reshape(x, {N, D}), idx, r.gates, layer.expert_weights(),
                              nn::Activation::ReLU2, keep);
  layer.remove_experts({2});
  std::vector<double> got = layer.forward(x).to_vector<double>(), w = want.to_vector<double>();
  for (size_t i = 0; i < w.size(); ++i) EXPECT_NEAR(got[i], w[i], 1e-12);
  layer.remove_experts({});
  std::vector<double> full_y = layer.forward(x).to_vector<double>();
  EXPECT_NE(full_y, got);
}

TEST(SmoeLayer, ReportsDroppedFraction) {
  SmoeOptions o = small_options("switch");
  o.capacity_factor = 1.0;
  Generator gen(45);
  SmoeFeedForward layer(o, gen, {DType::F64});
  fill_(layer.gate_weights().gate, 0.0);  // ties: every token picks expert 0
  Tensor y = layer.forward(rnd({2, 8, D}, gen, 1.0));
  auto m = layer.last_metrics();
  EXPECT_EQ(m.at("capacity"), 4.0);  // ⌈16·1·1/4⌉
  EXPECT_DOUBLE_EQ(m.at("dropped_fraction"), 12.0 / 16.0);
  EXPECT_DOUBLE_EQ(m.at("dropped_token_fraction"), 12.0 / 16.0);
  EXPECT_EQ(y.shape(), (Shape{2, 8, D}));
  // The training log's view: the same numbers, without the total aux loss and the capacity.
  std::map<std::string, double> logged;
  for (const auto& [k, v] : layer.metrics()) logged[k] = v;
  EXPECT_EQ(logged.count("aux_loss") + logged.count("capacity"), 0u);
  EXPECT_DOUBLE_EQ(logged.at("dropped_fraction"), 0.75);
  EXPECT_DOUBLE_EQ(logged.at("balance"), m.at("balance"));
}

TEST(SmoeLayer, BackwardReachesEveryParameter) {
  for (const char* kind : {"softmax", "noisy_topk", "switch", "gshard"}) {
    SmoeOptions o = SmoeOptions::defaults(16);
    o.experts = 4;
    o.gating = parse_gating(kind);
    o.capacity_factor = std::string(kind) == "switch" ? 1.25 : 0.0;
    Generator gen(46), noise(47);
    SmoeFeedForward layer(o, gen, {}, &noise);
    Tensor x = randn({2, 5, 16}, gen);
    Tensor loss = sum(mul(layer.forward(x), layer.forward(x)));
    if (layer.aux_loss().defined()) loss = add(loss, layer.aux_loss());
    loss.backward();
    for (auto& [name, p] : layer.named_parameters())
      EXPECT_TRUE(p.grad().defined()) << kind << " " << name;
  }
}

// ---- the same layer on a CUDA device (skipped without one) ----

TEST(SmoeCuda, LayerMatchesCpuForEveryGatingAndDispatch) {
#ifndef MONET_WITH_CUDA
  GTEST_SKIP() << "no CUDA device: this build has no CUDA backend";
#else
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device: " << cuda::unavailable_reason();
  for (const char* kind : {"softmax", "noisy_topk", "switch", "gshard"})
    for (double cf : {0.0, 1.0}) {
      SmoeOptions o = SmoeOptions::defaults(16);
      o.experts = 4;
      o.gating = parse_gating(kind);
      o.capacity_factor = cf;
      o.jitter = std::string(kind) == "switch" ? 0.01 : 0.0;
      auto run = [&](Device dev) {
        Generator init(50), noise(51), data(52);
        SmoeFeedForward layer(o, init, {DType::F32, dev}, &noise);
        if (o.gating == Gating::NoisyTopK) {  // off zero so the routing is not all ties
          copy_(layer.gate_weights().gate, randn({4, 16}, data).to(dev));
          copy_(layer.gate_weights().noise, randn({4, 16}, data).to(dev));
        }
        Tensor x = randn({2, 6, 16}, data).to(dev).requires_grad_();
        Tensor y = layer.forward(x);
        Tensor loss = add(sum(mul(y, y)), layer.aux_loss());
        loss.backward();
        std::vector<std::vector<float> > out{y.to_vector<float>(), x.grad().to_vector<float>()};
        for (auto& [name, p] : layer.named_parameters()) out.push_back(p.grad().to_vector<float>());
        return out;
      };
      auto cpu = run(Device::cpu()), gpu = run(Device::cuda());
      ASSERT_EQ(cpu.size(), gpu.size());
      for (size_t t = 0; t < cpu.size(); ++t)
        for (size_t i = 0; i < cpu[t].size(); ++i)
          ASSERT_NEAR(gpu[t][i], cpu[t][i], 1e-4 * (1 + std::abs(cpu[t][i])))
              << kind << " cf " << cf << " tensor " << t << " element " << i;
    }
#endif
}
