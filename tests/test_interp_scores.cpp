// The measuring side of the interpretability commands (eval/experts.h) against slow references
// written here: the streaming top-K against a full sort, expert scores against dense sums of the
// layers' own routing, expert removal reaching every layer of a site (and restore() undoing it),
// and conservation laws of the collected statistics (every token counted once; a MONET token's
// scores sum to H).
#include <gtest/gtest.h>

#include <algorithm>
#include <tuple>

#include "core/autograd.h"
#include "eval/experts.h"
#include "interp_fixtures.h"
#include "monet/monet_layer.h"
#include "monet/peer.h"
#include "monet/smoe.h"
#include "test_train_util.h"
#include "train/corpus.h"

using namespace monet;
using namespace monet::interp;
using namespace monet::testing::interp_fixtures;
using monet::testing::ThrowsWith;

namespace {

// Dense [tokens][N] from sparse scores; checks that the listed experts increase and score > 0.
std::vector<std::vector<double>> dense(const TokenScores& s, int64_t n) {
  std::vector<std::vector<double>> d(static_cast<size_t>(s.tokens()), std::vector<double>(n, 0.0));
  for (int64_t t = 0; t < s.tokens(); ++t)
    for (int64_t q = s.begin[t]; q < s.begin[t + 1]; ++q) {
      EXPECT_GT(s.score[q], 0.0f);
      if (q > s.begin[t]) {
        EXPECT_LT(s.expert[q - 1], s.expert[q]);
      }
      d[t][s.expert[q]] = s.score[q];
    }
  return d;
}

Tensor random_ids(int64_t B, int64_t T, uint64_t seed) {
  Generator g(seed);
  std::vector<int32_t> v(static_cast<size_t>(B * T));
  for (int32_t& x : v) x = static_cast<int32_t>(32 + g.randint(90));
  return from_vector(v, {B, T});
}

}  // namespace

// ---- streaming top-K ----

TEST(InterpTopK, StreamingHeapsEqualAFullSort) {
  const int64_t experts = 6, tokens = 700;
  Generator g(4);
  std::vector<std::vector<ContextRef>> all(experts);
  for (int64_t k : {1, 3, 8, 1000}) {
    StreamingTopK top(experts, k);
    for (auto& v : all) v.clear();
    for (int64_t t = 0; t < tokens; ++t)
      for (int64_t e = 0; e < experts; ++e) {
        if (g.uniform() < 0.4 + 0.1 * static_cast<double>(e == 5)) continue;  // sparse
        // Few distinct scores, so that ties (broken by domain, then offset) are common.
        const ContextRef c{static_cast<float>(g.randint(5)) / 4, static_cast<int32_t>(g.randint(3)),
                           t};
        top.push(e, c);
        all[e].push_back(c);
      }
    for (int64_t e = 0; e < experts; ++e) {
      std::vector<ContextRef> want = all[e];
      std::sort(want.begin(), want.end(), [](const ContextRef& a, const ContextRef& b) {
        return std::tuple(-a.score, a.domain, a.offset) < std::tuple(-b.score, b.domain, b.offset);
      });
      want.resize(std::min<size_t>(want.size(), static_cast<size_t>(k)));
      const std::vector<ContextRef> got = top.best(e);
      ASSERT_EQ(got.size(), want.size()) << "k " << k << " expert " << e;
      for (size_t i = 0; i < got.size(); ++i) {
        EXPECT_EQ(got[i].score, want[i].score);
        EXPECT_EQ(got[i].domain, want[i].domain);
        EXPECT_EQ(got[i].offset, want[i].offset) << "k " << k << " expert " << e << " rank " << i;
      }
    }
  }
  EXPECT_TRUE(StreamingTopK(4, 0).best(2).empty());
}

// ---- expert scores ----

TEST(InterpScores, MonetScoreIsTheSumOverHeadsOfG1TimesG2) {
  auto model = tiny_model(kMonet);
  ExpertModel em(*model, kind_of(kMonet));
  ASSERT_EQ(em.kind(), "monet_vd");
  ASSERT_EQ(em.sites().size(), 1u);
  EXPECT_EQ(em.sites()[0].layers, (std::vector<int>{0, 1}));
  EXPECT_EQ(em.sites()[0].label(6), "(1, 2)");
  NoGradGuard ng;
  model->forward(random_ids(2, 8, 1));
  const auto d = dense(em.scores(0), 16);
  const auto& r = dynamic_cast<moe::MonetFeedForward&>(model->blocks()[0]->ffn()).last_routing();
  const std::vector<double> g1 = r.g1.to_vector<double>(), g2 = r.g2.to_vector<double>();
  ASSERT_EQ(d.size(), 16u);
  for (size_t t = 0; t < d.size(); ++t)
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j) {
        double s = 0;  // Σ_h ĝ1_hi ĝ2_hj over all of them, zeros included
        for (int h = 0; h < 2; ++h) s += g1[(t * 2 + h) * 4 + i] * g2[(t * 2 + h) * 4 + j];
        EXPECT_NEAR(d[t][i * 4 + j], s, 1e-6 * (1 + s)) << "token " << t << " expert " << i * 4 + j;
      }
}

TEST(InterpScores, SmoeAndPeerScoresAreTheirGatesSummedOverHeads) {
  NoGradGuard ng;
  {
    auto model = tiny_model(kSmoe);
    ExpertModel em(*model, kind_of(kSmoe));
    ASSERT_EQ(em.kind(), "smoe");
    ASSERT_EQ(em.sites().size(), 2u);
    EXPECT_EQ(em.sites()[1].name, "layer 1");
    model->forward(random_ids(2, 8, 2));
    for (size_t s = 0; s < 2; ++s) {
      const auto d = dense(em.scores(s), 4);
      const auto& route =
          dynamic_cast<moe::SmoeFeedForward&>(model->blocks()[s]->ffn()).last_route();
      const std::vector<int32_t> idx = route.idx.to_vector<int32_t>();
      const std::vector<double> gate = route.gates.to_vector<double>();
      for (size_t t = 0; t < d.size(); ++t) {
        std::vector<double> want(4, 0.0);
        for (int c = 0; c < 2; ++c) want[idx[t * 2 + c]] += gate[t * 2 + c];
        double total = 0;
        for (int e = 0; e < 4; ++e) {
          EXPECT_NEAR(d[t][e], want[e], 1e-6);
          total += d[t][e];
        }
        EXPECT_NEAR(total, 1.0, 1e-5);  // GShard's two gates are renormalised
      }
    }
  }
  {
    auto model = tiny_model(kPeer);
    ExpertModel em(*model, kind_of(kPeer));
    ASSERT_EQ(em.kind(), "peer");
    EXPECT_EQ(em.sites()[0].experts, 16);
    model->forward(random_ids(2, 8, 3));
    const auto d = dense(em.scores(1), 16);
    const auto& last =
        dynamic_cast<moe::PeerFeedForward&>(model->blocks()[1]->ffn()).last_retrieval();
    const std::vector<int32_t> idx = last.indices.to_vector<int32_t>();  // [B, T, h, k]
    const std::vector<double> gate = last.gates.to_vector<double>();
    for (size_t t = 0; t < d.size(); ++t) {
      std::vector<double> want(16, 0.0);
      for (int c = 0; c < 4; ++c) want[idx[t * 4 + c]] += gate[t * 4 + c];
      double total = 0;
      for (int e = 0; e < 16; ++e) {
        EXPECT_NEAR(d[t][e], want[e], 1e-6);
        total += d[t][e];
      }
      EXPECT_NEAR(total, 2.0, 1e-5);  // one softmax per head
    }
  }
}

TEST(InterpScores, RemovalReachesTheLayersOfTheSiteAndRestoreUndoesIt) {
  NoGradGuard ng;
  const Tensor x = random_ids(2, 8, 4);
  for (const auto& [ffn, site, expert] :
       {std::tuple{kSmoe, 1, 2}, std::tuple{kPeer, 0, 3}, std::tuple{kMonet, 0, 5}}) {
    SCOPED_TRACE(ffn);
    auto model = tiny_model(ffn);
    ExpertModel em(*model, kind_of(ffn));
    const std::vector<float> before = model->forward(x).to_vector<float>();
    // Remove every expert some token of x used: the output must change.
    const TokenScores sc = em.scores(static_cast<size_t>(site));
    std::vector<int64_t> used(sc.expert.begin(), sc.expert.end());
    std::sort(used.begin(), used.end());
    used.erase(std::unique(used.begin(), used.end()), used.end());
    ASSERT_FALSE(used.empty());
    em.remove(static_cast<size_t>(site), used);
    EXPECT_NE(model->forward(x).to_vector<float>(), before);
    em.restore();
    EXPECT_EQ(model->forward(x).to_vector<float>(), before) << "restore() is exact";
    EXPECT_TRUE(ThrowsWith([&] { em.remove(static_cast<size_t>(site), {expert + 1000}); },
                           {std::to_string(expert + 1000)}));
  }
  auto dense_model = tiny_model(R"({"kind": "dense"})");
  EXPECT_TRUE(ThrowsWith([&] { ExpertModel x(*dense_model, "dense"); }, {"dense", "layer 0"}));
}

// ---- collecting ----

TEST(InterpCollect, EveryTokenOnceAndScoresSumToTheHeads) {
  const std::vector<Domain> domains = tiny_domains();
  for (const auto& [ffn, per_token] : {std::pair{kMonet, 2.0}, std::pair{kMonetHd, 2.0},
                                       std::pair{kSmoe, 1.0}, std::pair{kPeer, 2.0}}) {
    SCOPED_TRACE(ffn);
    auto model = tiny_model(ffn);
    ExpertModel em(*model, kind_of(ffn));
    CollectOptions co;
    co.batch = 3;
    co.top_k = 4;
    const ExpertStats st = collect_expert_stats(em, domains, co);
    ASSERT_EQ(st.sites.size(), em.sites().size());
    for (const SiteStats& ss : st.sites)
      for (size_t d = 0; d < domains.size(); ++d) {
        // Every val token but the last is an input exactly once.
        const int64_t n = static_cast<int64_t>(domains[d].val.size()) - 1;
        EXPECT_EQ(ss.tokens[d], n);
        int64_t hist = 0, active = 0;
        for (size_t k = 0; k < ss.active_hist[d].size(); ++k)
          hist += ss.active_hist[d][k], active += static_cast<int64_t>(k) * ss.active_hist[d][k];
        EXPECT_EQ(hist, n);
        double mass = 0;
        int64_t on = 0;
        for (int64_t e = 0; e < ss.site.experts; ++e) mass += ss.mass[d][e], on += ss.active[d][e];
        EXPECT_EQ(on, active);
        // MONET: Σ_ij Σ_h ĝ1_hi ĝ2_hj = H; GShard: g1 + g2 = 1; PEER: one softmax per head.
        EXPECT_NEAR(mass / static_cast<double>(n), per_token, 1e-4);
        // The contexts lie inside their domain's text, on a domain the expert is routed on.
        for (int64_t e = 0; e < ss.site.experts; ++e)
          for (const ContextRef& c : ss.top.best(e)) {
            EXPECT_LT(c.offset, static_cast<int64_t>(domains[c.domain].val.size()) - 1);
            EXPECT_GT(ss.mass[static_cast<size_t>(c.domain)][e], 0.0);
          }
      }
  }
  // The site of one layer only.
  auto model = tiny_model(kPeer);
  ExpertModel em(*model, kind_of(kPeer));
  CollectOptions co;
  co.layer = 1;
  const ExpertStats st = collect_expert_stats(em, domains, co);
  ASSERT_EQ(st.sites.size(), 1u);
  EXPECT_EQ(st.sites[0].site.name, "layer 1");
  co.layer = 5;
  EXPECT_TRUE(ThrowsWith([&] { collect_expert_stats(em, domains, co); }, {"--layer 5"}));
}

TEST(InterpCollect, EvalBatchStartsLocateEveryRow) {
  const std::vector<int32_t> tokens = tiny_domains()[0].val;
  for (int64_t windows : {0, 3}) {
    for (const EvalBatch& b : eval_batches(tokens, 4, kContext, windows)) {
      const std::vector<int32_t> in = b.inputs.to_vector<int32_t>();
      ASSERT_EQ(static_cast<int64_t>(b.starts.size()), b.inputs.size(0));
      for (int64_t r = 0; r < b.inputs.size(0); ++r)
        for (int64_t t = 0; t < kContext; ++t)
          EXPECT_EQ(in[r * kContext + t], tokens[b.starts[r] + t]);
    }
  }
}
