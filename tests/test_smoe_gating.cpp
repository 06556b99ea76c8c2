// SMoE gating and its aux losses: every gating (softmax, noisy top-k, Switch, GShard) against the
// routing of Shazeer / Switch / GShard written per token (the logits of one row, the experts chosen
// on the host) feeding the per-token reference of smoe_reference.h, in the output and in every
// gradient; finite differences through the whole function, gates and aux losses included; and the
// aux losses (CV², balance, router z-loss, smooth load) on hand-made cases.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "gradcheck.h"
#include "monet/smoe.h"
#include "smoe_reference.h"

using namespace monet;
using namespace monet::moe;
using namespace monet::testing::smoe_reference;

namespace {

// Indices of the k largest values, larger first, ties to the smaller index (as topk).
std::vector<int32_t> host_topk(const std::vector<double>& v, int64_t k) {
  std::vector<int32_t> o(v.size());
  std::iota(o.begin(), o.end(), 0);
  std::stable_sort(o.begin(), o.end(), [&](int32_t a, int32_t b) { return v[a] > v[b]; });
  o.resize(k);
  return o;
}

// The routing of Shazeer / Switch / GShard written per token: logits of one row, experts chosen
// on the host, gates from slices of that row. ε and the jitter are drawn as the layer draws them.
Tensor reference_layer(const Tensor& x, const GateWeights& gw, const ExpertWeights& w,
                       const SmoeOptions& o, bool training, Generator noise_copy) {
  const int64_t n = x.size(0);
  const Gating kind = o.gating;
  Tensor xr = x, eps;
  if (training && o.jitter > 0)
    xr = mul(x, uniform(x.shape(), 1 - o.jitter, 1 + o.jitter, noise_copy, DType::F64));
  if (training && kind == Gating::NoisyTopK) eps = randn({n, E}, noise_copy, DType::F64);
  std::vector<int32_t> idx;
  std::vector<Tensor> gate_rows;
  for (int64_t t = 0; t < n; ++t) {
    Tensor l = matmul(slice(xr, 0, t, t + 1), transpose(gw.gate, 0, 1));  // [1, E]
    std::vector<int32_t> chosen;
    Tensor g;
    if (kind == Gating::Softmax) {
      chosen.resize(E);
      std::iota(chosen.begin(), chosen.end(), 0);
      g = softmax(l, -1);
    } else if (kind == Gating::NoisyTopK) {
      Tensor h = l;
      if (training)
        h = add(l, mul(slice(eps, 0, t, t + 1),
                       softplus(matmul(slice(x, 0, t, t + 1), transpose(gw.noise, 0, 1)))));
      chosen = host_topk(h.to_vector<double>(), o.k());
      std::vector<Tensor> kept;
      for (int32_t e : chosen) kept.push_back(at(h, 0, e));
      g = softmax(concat(kept, 1), -1);
    } else {
      Tensor p = softmax(l, -1);
      chosen = host_topk(p.to_vector<double>(), o.k());
      std::vector<Tensor> kept;
      for (int32_t e : chosen) kept.push_back(at(p, 0, e));
      g = concat(kept, 1);
      if (kind == Gating::GShard) g = div(g, sum(g, {1}, true));
    }
    idx.insert(idx.end(), chosen.begin(), chosen.end());
    gate_rows.push_back(g);
  }
  return reference_moe(x, idx, concat(gate_rows, 0), w, o.activation);
}

void expect_gating_matches_reference(SmoeOptions o, bool training, uint64_t seed) {
  Generator g(seed);
  Tensor x = leaf(rnd({N, D}, g, 1.0));
  GateWeights gw{leaf(rnd({E, D}, g, 1.0)),
                 o.gating == Gating::NoisyTopK ? leaf(rnd({E, D}, g)) : Tensor()};
  ExpertWeights w = random_experts(g);
  std::vector<Tensor> params{x, gw.gate, w.w1, w.w2};
  if (gw.noise.defined()) params.push_back(gw.noise);
  for (double cf : {0.0, 100.0}) {  // dropless, and capacity large enough to drop nothing
    o.capacity_factor = cf;
    Generator noise(seed + 1);
    const Generator start = noise;
    expect_same_function(
        [&] {
          noise = start;
          SmoeResult r = smoe(x, gw, w, o, training, &noise);
          EXPECT_EQ(r.stats.dropped, 0);
          return r.y;
        },
        [&] { return reference_layer(x, gw, w, o, training, start); }, params);
  }
}

}  // namespace

// ---- gating against the per-token reference ----

TEST(SmoeGating, SoftmaxMatchesPerTokenReference) {
  expect_gating_matches_reference(small_options("softmax"), true, 10);
}
TEST(SmoeGating, NoisyTopKMatchesPerTokenReference) {
  SmoeOptions o = small_options("noisy_topk");
  o.topk = 2;
  expect_gating_matches_reference(o, /*training=*/true, 11);
  expect_gating_matches_reference(o, /*training=*/false, 12);
}
TEST(SmoeGating, SwitchMatchesPerTokenReference) {
  SmoeOptions o = small_options("switch");
  expect_gating_matches_reference(o, true, 13);
  o.jitter = 0.1;
  o.activation = nn::Activation::GELU;
  expect_gating_matches_reference(o, true, 14);
}
TEST(SmoeGating, GShardMatchesPerTokenReference) {
  expect_gating_matches_reference(small_options("gshard"), true, 15);
}

// Finite differences through the whole function, gates and aux losses included. Top-k is
// piecewise constant; at these random points no perturbation of 1e-6 changes a choice.
TEST(SmoeGating, GradcheckOfOutputAndAuxLoss) {
  for (const char* kind : {"softmax", "noisy_topk", "switch", "gshard"}) {
    SmoeOptions o = small_options(kind);
    o.capacity_factor = std::string(kind) == "gshard" ? 1.0 : 0.0;  // with some drops
    Generator g(20);
    std::vector<Tensor> in{rnd({N, D}, g, 1.0), rnd({E, D}, g, 1.0), rnd({E, D}, g),
                           rnd({E, M, D}, g), rnd({E, D, M}, g)};
    monet::testing::expect_gradcheck(
        std::string("smoe ") + kind,
        [&](const std::vector<Tensor>& p) {
          Generator noise(21);  // the same ε on every call
          GateWeights gw{p[1], o.gating == Gating::NoisyTopK ? p[2] : Tensor()};
          SmoeResult r = smoe(p[0], gw, {p[3], p[4]}, o, true, &noise);
          Tensor aux = weighted_aux_loss(r.route, o);
          Tensor y = reshape(r.y, {-1});
          return aux.defined() ? concat({y, mul(reshape(aux, {1}), 100.0)}, 0) : y;
        },
        in);
  }
}

// ---- aux losses on hand cases ----

TEST(SmoeAux, CvSquaredHandCase) {
  // [1, 2, 3, 4]: mean 2.5, population variance 1.25 → 1.25 / 6.25 = 0.2
  EXPECT_NEAR(cv_squared(from_vector(std::vector<double>{1, 2, 3, 4}, {4})).item(), 0.2, 1e-9);
  EXPECT_NEAR(cv_squared(full({5}, 3.0, DType::F64)).item(), 0.0, 1e-12);
  Generator g(30);
  monet::testing::expect_gradcheck("cv_squared",
                                   [](const std::vector<Tensor>& p) { return cv_squared(p[0]); },
                                   {monet::testing::rnd({5}, g, 0.5, 2.0)});
}

TEST(SmoeAux, BalanceLossHandCaseAndUniformSplit) {
  // f = [2/3, 1/3], P = [(0.7+0.4+0.9)/3, (0.3+0.6+0.1)/3] = [2/3, 1/3] → 2·(4/9 + 1/9) = 10/9
  Tensor probs = from_vector(std::vector<double>{0.7, 0.3, 0.4, 0.6, 0.9, 0.1}, {3, 2});
  Tensor first = from_vector(std::vector<int32_t>{0, 1, 0}, {3});
  EXPECT_NEAR(balance_loss(probs, first).item(), 10.0 / 9.0, 1e-12);
  // A uniform split (f_i = P_i = 1/E) gives exactly 1, so α·1 = α.
  Tensor uniform_p = full({8, 4}, 0.25, DType::F64);
  Tensor cyc = from_vector(std::vector<int32_t>{0, 1, 2, 3, 3, 2, 1, 0}, {8});
  EXPECT_NEAR(balance_loss(uniform_p, cyc).item(), 1.0, 1e-12);
  // Through the layer: with W_g = 0 every token sees p = 1/E, so L_balance = 1 and
  // L_z = (log E)²; aux = α + w_z (log E)².
  SmoeOptions o = small_options("switch");
  Generator gen(31);
  SmoeFeedForward layer(o, gen, {DType::F64});
  fill_(layer.gate_weights().gate, 0.0);
  layer.forward(rnd({2, 4, D}, gen));
  auto m = layer.last_metrics();
  EXPECT_NEAR(m.at("balance"), 1.0, 1e-12);
  EXPECT_NEAR(m.at("z_loss"), std::log(4.0) * std::log(4.0), 1e-12);
  EXPECT_NEAR(layer.aux_loss().item(), 1e-2 + 1e-3 * std::log(4.0) * std::log(4.0), 1e-12);
}

TEST(SmoeAux, RouterZLossHandCase) {
  // logsumexp [0, 0] = log 2, logsumexp [log 3, 0] = log 4 = 2 log 2 → mean = 5/2 (log 2)²
  Tensor l = from_vector(std::vector<double>{0, 0, std::log(3.0), 0}, {2, 2});
  EXPECT_NEAR(router_z_loss(l).item(), 2.5 * std::log(2.0) * std::log(2.0), 1e-12);
}

TEST(SmoeAux, SmoothLoadMatchesItsDefinition) {
  Generator g(32);
  const int64_t k = 2;
  Tensor clean = rnd({N, E}, g, 1.0), std_ = add(rnd({N, E}, g, 0.3), 1.0);
  Tensor noisy = add(clean, mul(randn({N, E}, g, DType::F64), std_));
  std::vector<double> c = clean.to_vector<double>(), h = noisy.to_vector<double>(),
                      s = std_.to_vector<double>(), want(E, 0.0);
  for (int64_t t = 0; t < N; ++t)
    for (int64_t i = 0; i < E; ++i) {
      std::vector<double> others;  // kth_excluding(H, k, i): the k-th largest of H without H_i
      for (int64_t j = 0; j < E; ++j)
        if (j != i) others.push_back(h[t * E + j]);
      std::sort(others.rbegin(), others.rend());
      want[i] += normal_cdf((c[t * E + i] - others[k - 1]) / s[t * E + i]);
    }
  std::vector<double> got = smooth_load(clean, noisy, std_, k).to_vector<double>();
  for (int64_t i = 0; i < E; ++i) EXPECT_NEAR(got[i], want[i], 1e-12) << "expert " << i;
  monet::testing::expect_gradcheck(
      "smooth_load",
      [](const std::vector<Tensor>& p) { return smooth_load(p[0], add(p[0], p[1]), p[2], 2); },
      {clean, sub(noisy, clean), std_});
}

TEST(SmoeAux, NormalCdfOpValuesAndGradient) {
  Tensor z = from_vector(std::vector<double>{-3, -1, 0, 0.5, 2}, {5});
  std::vector<double> v = std_normal_cdf(z).to_vector<double>();
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(v[i], normal_cdf(z.to_vector<double>()[i]), 1e-15);
  EXPECT_NEAR(std_normal_cdf(from_vector(std::vector<float>{1.0f}, {1})).item(), 0.8413447, 1e-6);
  Generator g(33);
  monet::testing::expect_gradcheck(
      "std_normal_cdf", [](const std::vector<Tensor>& p) { return std_normal_cdf(p[0]); },
      {monet::testing::rnd({3, 4}, g, -3.0, 3.0)});
}
