// SMoE against its definition: a slow reference, written here, that loops over the tokens, over
// each token's chosen experts, computes V_i σ(U_i x) with per-expert ops, weights and sums. The
// dispatched layer (dropless and capacity) must match it in the output and in the gradients of x,
// the gate weights, w1 and w2, for every gating. Finite differences check the dispatch (routing
// held fixed) and each gating; the counting sort, the capacity drops and the aux losses are
// checked on hand-made cases.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "gradcheck.h"
#include "moe/smoe.h"
#ifdef MONET_WITH_CUDA
#include "core/cuda/device.h"
#endif

using namespace monet;
using namespace monet::moe;

namespace {

constexpr int64_t N = 8, D = 6, E = 4, M = 5;

Tensor rnd(const Shape& s, Generator& g, double scale = 0.5) {
  return mul(randn(s, g, DType::F64), scale);
}
Tensor leaf(Tensor t) {
  return t.requires_grad_();
}
Tensor idx_tensor(const std::vector<int32_t>& v, int64_t k) {
  return from_vector(v, {static_cast<int64_t>(v.size()) / k, k});
}
ExpertWeights random_experts(Generator& g, int64_t experts = E) {
  return {leaf(rnd({experts, M, D}, g)), leaf(rnd({experts, D, M}, g))};
}

// E_i(x) = V_i σ(U_i x) for one row x [1, d], with per-expert slices of the stacked weights.
Tensor expert(const Tensor& xt, const ExpertWeights& w, int64_t i, nn::Activation act) {
  Tensor u = squeeze(slice(w.w1, 0, i, i + 1), 0), v = squeeze(slice(w.w2, 0, i, i + 1), 0);
  Tensor h = matmul(xt, transpose(u, 0, 1));
  h = act == nn::Activation::ReLU2 ? relu2(h) : gelu(h);
  return matmul(h, transpose(v, 0, 1));
}
Tensor at(const Tensor& t, int64_t r, int64_t c) {  // element [r, c] as a [1, 1] tensor
  return slice(slice(t, 0, r, r + 1), 1, c, c + 1);
}

// y_t = Σ_s g[t,s] E_{idx[t,s]}(x_t), skipping idx < 0 and the pairs with keep[p] false.
Tensor reference_moe(const Tensor& x, const std::vector<int32_t>& idx, const Tensor& gates,
                     const ExpertWeights& w, nn::Activation act,
                     const std::vector<bool>& keep = {}) {
  const int64_t n = x.size(0), k = gates.size(1);
  std::vector<Tensor> rows;
  for (int64_t t = 0; t < n; ++t) {
    Tensor xt = slice(x, 0, t, t + 1), yt = zeros({1, D}, x.dtype());
    for (int64_t s = 0; s < k; ++s) {
      const int32_t e = idx[t * k + s];
      if (e < 0 || (!keep.empty() && !keep[t * k + s])) continue;
      yt = add(yt, mul(at(gates, t, s), expert(xt, w, e, act)));
    }
    rows.push_back(yt);
  }
  return concat(rows, 0);
}

// Outputs and the gradients of every leaf in `params` agree (same random output weighting).
void expect_same_function(const std::function<Tensor()>& a_fn, const std::function<Tensor()>& b_fn,
                          std::vector<Tensor> params, double tol = 1e-10) {
  Generator g(99);
  Tensor ya = a_fn(), yb = b_fn();
  ASSERT_EQ(ya.shape(), yb.shape());
  Tensor w = randn(ya.shape(), g, DType::F64);
  std::vector<double> a = ya.to_vector<double>(), b = yb.to_vector<double>();
  for (size_t i = 0; i < a.size(); ++i)
    ASSERT_NEAR(a[i], b[i], tol * (1 + std::abs(b[i]))) << "output " << i;
  auto grads = [&](const Tensor& y) {
    for (Tensor& p : params) p.set_grad(Tensor());
    sum(mul(y, w)).backward();
    std::vector<std::vector<double>> gs;
    for (Tensor& p : params)
      gs.push_back(p.grad().defined() ? p.grad().to_vector<double>()
                                      : std::vector<double>(p.numel(), 0.0));
    return gs;
  };
  auto ga = grads(ya), gb = grads(yb);
  for (size_t p = 0; p < params.size(); ++p)
    for (size_t i = 0; i < ga[p].size(); ++i)
      ASSERT_NEAR(ga[p][i], gb[p][i], 10 * tol * (1 + std::abs(gb[p][i])))
          << "param " << p << " element " << i;
}

// Indices of the k largest values, larger first, ties to the smaller index (as topk).
std::vector<int32_t> host_topk(const std::vector<double>& v, int64_t k) {
  std::vector<int32_t> o(v.size());
  std::iota(o.begin(), o.end(), 0);
  std::stable_sort(o.begin(), o.end(), [&](int32_t a, int32_t b) { return v[a] > v[b]; });
  o.resize(k);
  return o;
}

SmoeOptions small_options(const std::string& gating) {
  SmoeOptions o = SmoeOptions::defaults(D);
  o.experts = E;
  o.dim = M;
  o.gating = parse_gating(gating);
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

// ---- dispatch ----

TEST(SmoeDispatch, CountingSortIsStableAndDeterministic) {
  // pairs p = t·k + s of 5 tokens, k = 2; −1 = no expert
  const std::vector<int32_t> idx{2, 0, 0, 2, 1, -1, 2, 0, 0, 1};
  ExpertSort s = sort_by_expert(idx, 4);
  EXPECT_EQ(s.counts, (std::vector<int64_t>{4, 2, 3, 0}));
  EXPECT_EQ(s.offsets, (std::vector<int64_t>{0, 4, 6, 9, 9}));
  // Within each expert the pairs keep their original order (stable).
  EXPECT_EQ(s.order, (std::vector<int32_t>{1, 2, 7, 8, 4, 9, 0, 3, 6}));
  EXPECT_EQ(s.row, (std::vector<int32_t>{6, 0, 1, 7, 4, -1, 8, 2, 3, 5}));
  for (int64_t r = 0; r < s.rows(); ++r) EXPECT_EQ(s.row[s.order[r]], r);
  // The same as a stable sort by expert, and the same on a second run.
  std::vector<int32_t> ref;
  for (int32_t p = 0; p < 10; ++p)
    if (idx[p] >= 0) ref.push_back(p);
  std::stable_sort(ref.begin(), ref.end(), [&](int32_t a, int32_t b) { return idx[a] < idx[b]; });
  EXPECT_EQ(s.order, ref);
  EXPECT_EQ(sort_by_expert(idx, 4).order, s.order);
}

TEST(SmoeDispatch, DroplessMatchesPerTokenReference) {
  Generator g(1);
  Tensor x = leaf(rnd({N, D}, g, 1.0)), gates = leaf(rnd({N, 2}, g));
  ExpertWeights w = random_experts(g);
  // Expert 3 gets nothing, token 5 has one slot unassigned, token 2 picks expert 1 twice.
  const std::vector<int32_t> idx{0, 1, 2, 0, 1, 1, 0, 2, 1, 0, -1, 2, 2, 1, 0, 2};
  for (nn::Activation act : {nn::Activation::ReLU2, nn::Activation::GELU}) {
    DispatchStats st;
    expect_same_function([&] { return moe_dropless(x, idx_tensor(idx, 2), gates, w, act, &st); },
                         [&] { return reference_moe(x, idx, gates, w, act); },
                         {x, gates, w.w1, w.w2});
    EXPECT_EQ(st.assigned, 15);
    EXPECT_EQ(st.dropped, 0);
    // Element by element: GCC 12.2 at -O3 -march=native (AVX-512) miscompiles the literal
    // std::vector<int64_t>{5, 5, 5, 0} into {5, 5, 5, 5} (an unmasked broadcast store).
    ASSERT_EQ(st.counts.size(), 4u);
    for (int e = 0; e < 3; ++e) EXPECT_EQ(st.counts[e], 5) << "expert " << e;
    EXPECT_EQ(st.counts[3], 0);
  }
}

TEST(SmoeDispatch, CapacityEqualsDroplessWhenLargeEnough) {
  Generator g(2);
  Tensor x = leaf(rnd({N, D}, g, 1.0)), gates = leaf(rnd({N, 2}, g));
  ExpertWeights w = random_experts(g);
  const std::vector<int32_t> idx{3, 1, 2, 3, 1, 0, 0, 2, 1, 3, 3, 2, 2, 1, 0, 3};
  DispatchStats st;
  // Largest expert load is 5 pairs; CF = 2.5 gives C = ⌈16·2.5/4⌉ = 10 ≥ 5.
  expect_same_function(
      [&] {
        return moe_capacity(x, idx_tensor(idx, 2), gates, w, nn::Activation::ReLU2, 2.5, &st);
      },
      [&] { return moe_dropless(x, idx_tensor(idx, 2), gates, w, nn::Activation::ReLU2); },
      {x, gates, w.w1, w.w2}, 1e-12);
  EXPECT_EQ(st.capacity, 10);
  EXPECT_EQ(st.dropped, 0);
}

TEST(SmoeDispatch, CapacityDropsTheLateArrivals) {
  Generator g(3);
  Tensor x = leaf(rnd({6, D}, g, 1.0)), gates = leaf(rnd({6, 1}, g));
  ExpertWeights w = random_experts(g, 3);
  const std::vector<int32_t> idx(6, 0);  // six tokens, all on expert 0
  EXPECT_EQ(expert_capacity(6, 1, 2.0, 3), 4);
  DispatchStats st;
  Tensor y = moe_capacity(x, idx_tensor(idx, 1), gates, w, nn::Activation::ReLU2, 2.0, &st);
  EXPECT_EQ(st.capacity, 4);
  EXPECT_EQ(st.assigned, 6);
  EXPECT_EQ(st.dropped, 2);
  EXPECT_EQ(st.dropped_tokens, 2);
  // Tokens 0–3 are served; tokens 4 and 5 (the last to arrive) get 0 and no gate gradient.
  std::vector<bool> keep{true, true, true, true, false, false};
  expect_same_function(
      [&] { return moe_capacity(x, idx_tensor(idx, 1), gates, w, nn::Activation::ReLU2, 2.0); },
      [&] { return reference_moe(x, idx, gates, w, nn::Activation::ReLU2, keep); },
      {x, gates, w.w1, w.w2});
  std::vector<double> yv = y.to_vector<double>();
  for (int64_t i = 4 * D; i < 6 * D; ++i) EXPECT_EQ(yv[i], 0.0);
  std::vector<double> gg = gates.grad().to_vector<double>();
  EXPECT_EQ(gg[4], 0.0);
  EXPECT_EQ(gg[5], 0.0);
  EXPECT_NE(gg[3], 0.0);
}

TEST(SmoeDispatch, CapacityPositionsAreSlotMajor) {
  // 3 tokens, k = 2, E = 2. First choices: t0→1, t1→1, t2→0; second: t0→0, t1→0, t2→1.
  const std::vector<int32_t> idx{1, 0, 1, 0, 0, 1};
  CapacityPlan plan = plan_capacity(idx, 3, 2, 2, 2);
  // All first choices take positions before any second choice.
  EXPECT_EQ(plan.position, (std::vector<int32_t>{0, 1, 1, 2, 0, 2}));
  EXPECT_EQ(plan.dropped, 2);  // (t1, slot 1) and (t2, slot 1): second choices lose
  Generator g(4);
  Tensor x = leaf(rnd({3, D}, g, 1.0)), gates = leaf(rnd({3, 2}, g));
  ExpertWeights w = random_experts(g, 2);
  EXPECT_EQ(expert_capacity(3, 2, 0.6, 2), 2);
  expect_same_function(
      [&] { return moe_capacity(x, idx_tensor(idx, 2), gates, w, nn::Activation::GELU, 0.6); },
      [&] {
        return reference_moe(x, idx, gates, w, nn::Activation::GELU,
                             {true, true, true, false, true, false});
      },
      {x, gates, w.w1, w.w2});
}

TEST(SmoeDispatch, GroupedLinearGradcheck) {
  Generator g(5);
  // groups of 3, 0 (empty) and 4 rows
  monet::testing::expect_gradcheck("grouped_linear",
                                   [](const std::vector<Tensor>& p) {
                                     return grouped_linear(p[0], p[1], {0, 3, 3, 7});
                                   },
                                   {rnd({7, D}, g), rnd({3, M, D}, g)});
  EXPECT_THROW(grouped_linear(rnd({7, D}, g), rnd({3, M, D}, g), {0, 3, 2, 7}), Error);
}

TEST(SmoeDispatch, GradcheckWithRoutingHeldFixed) {
  Generator g(6);
  const std::vector<int32_t> idx{0, 1, 2, 0, 1, 1, 0, 2, 1, 0, -1, 2, 2, 1, 0, 2};
  ExpertWeights w = random_experts(g);
  std::vector<Tensor> in{rnd({N, D}, g, 1.0), rnd({N, 2}, g), w.w1, w.w2};
  monet::testing::expect_gradcheck(
      "moe_dropless",
      [&](const std::vector<Tensor>& p) {
        return moe_dropless(p[0], idx_tensor(idx, 2), p[1], {p[2], p[3]}, nn::Activation::ReLU2);
      },
      in);
  monet::testing::expect_gradcheck(  // C = ⌈16·0.5/4⌉ = 2: experts 0, 1, 2 drop pairs
      "moe_capacity",
      [&](const std::vector<Tensor>& p) {
        return moe_capacity(p[0], idx_tensor(idx, 2), p[1], {p[2], p[3]}, nn::Activation::GELU,
                            0.5);
      },
      in);
}

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
        std::vector<std::vector<float>> out{y.to_vector<float>(), x.grad().to_vector<float>()};
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
