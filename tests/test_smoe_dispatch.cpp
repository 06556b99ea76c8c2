// SMoE dispatch against its definition: the dropless and capacity dispatches must match the slow
// per-token reference of smoe_reference.h (a loop over each token's chosen experts computing
// V_i σ(U_i x) with per-expert ops) in the output and in the gradients of x, the gates, w1 and w2.
// The counting sort and the capacity drops are checked on hand-made cases, and finite differences
// check the dispatch with the routing held fixed.
#include <gtest/gtest.h>

#include <algorithm>

#include "gradcheck.h"
#include "monet/smoe.h"
#include "smoe_reference.h"

using namespace monet;
using namespace monet::moe;
using namespace monet::testing::smoe_reference;

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
