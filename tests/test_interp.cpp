// The interpretability commands (eval/experts.h, eval/mask.h, eval/purge.h) against hand-made
// answers and slow references written here: the selection rule on a hand-made routing table,
// Pearson correlations against the two-pass textbook formula, the streaming top-K against a full
// sort, expert scores against dense sums, conservation laws of the collected statistics (every
// token counted once; a MONET token's scores sum to H), the alignment of a purge score with the
// tokens, and the HTML report rendered by headless Chromium (skipped when chromium is absent).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <tuple>

#include "core/autograd.h"
#include "eval/experts.h"
#include "eval/mask.h"
#include "eval/purge.h"
#include "moe/monet_layer.h"
#include "moe/peer.h"
#include "moe/smoe.h"
#include "test_train_util.h"
#include "train/config.h"
#include "train/model.h"
#include "train/tokenizer.h"
#include "util/fileio.h"
#include "util/plot.h"

using namespace monet;
using namespace monet::interp;
using monet::testing::TempDir;
using monet::testing::ThrowsWith;
namespace fs = std::filesystem;

namespace {

constexpr int64_t kContext = 16;
const char* kMonet =
    R"({"kind": "monet_vd", "heads": 2, "sqrt_n": 4, "dim": 4, "topk": 2, "group": 2})";
const char* kMonetHd =
    R"({"kind": "monet_hd", "heads": 2, "sqrt_n": 4, "dim": 4, "topk": 2, "group": 2})";
const char* kSmoe = R"({"kind": "smoe", "experts": 4, "gating": "gshard"})";
const char* kPeer = R"({"kind": "peer", "sqrt_n": 4, "heads": 2, "topk": 2, "d_query": 8})";

// model.ffn.kind of an ffn object.
std::string kind_of(const std::string& ffn) {
  return nlohmann::json::parse(ffn).at("kind").get<std::string>();
}

std::shared_ptr<nn::Transformer> tiny_model(const std::string& ffn, uint64_t seed = 3) {
  const Config cfg = parse_config(nlohmann::json::parse(
      R"({"model": {"d": 16, "layers": 2, "heads": 2, "context": 16, "ffn": )" + ffn + "}}"));
  Generator g(seed);
  auto m = build_model(cfg.model, g);
  m->eval();
  return m;
}

// Two small domains with different text.
std::vector<Domain> tiny_domains() {
  ByteTokenizer tok;
  std::string code, prose;
  for (int i = 0; i < 12; ++i)
    code += "def f" + std::to_string(i) + "(x):  # add\n    return x + 1\n";
  for (int i = 0; i < 10; ++i) prose += "The quick brown fox jumps over the lazy dog, again. ";
  return {{"code", tok.encode(code), tok.encode(code.substr(0, 150))},
          {"prose", tok.encode(prose), tok.encode(prose.substr(0, 97))}};
}

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

// ---- the selection rule ----

TEST(InterpRule, SelectsExpertsAtLeastRatioTimesTheSecondDomain) {
  // Three domains, six experts; dyadic numbers so the boundary cases (exactly 2×) are exact.
  const std::vector<std::vector<double>> p = {
      {0.5, 0.125, 0.75, 0.0, 0.375, 0.0},
      {0.25, 0.125, 0.125, 0.0, 0.1875, 0.0},
      {0.125, 0.5, 0.25, 0.0, 0.125, 0.0625},
  };
  // Domain 0: e0 0.5 vs 0.25 (exactly 2×, kept), e2 0.75 vs 0.25 (3×), e4 0.375 vs 0.1875 (2×);
  // e1 is another domain's, e3 never routed, e5 only on domain 2.
  EXPECT_EQ(specialised_experts(p, 0, {2.0}), (std::vector<int64_t>{0, 2, 4}));
  EXPECT_EQ(specialised_experts(p, 1, {2.0}), (std::vector<int64_t>{}));
  EXPECT_EQ(specialised_experts(p, 2, {2.0}), (std::vector<int64_t>{1, 5}));  // e5: second is 0
  EXPECT_EQ(specialised_experts(p, 0, {3.0}), (std::vector<int64_t>{2}));
  EXPECT_EQ(specialised_experts(p, 0, {1.0}), (std::vector<int64_t>{0, 2, 4}));
  // An expert is specialised to at most one domain whenever ratio > 1.
  EXPECT_EQ(parse_rule("ratio:2").ratio, 2.0);
  EXPECT_EQ(parse_rule("ratio:1.5").ratio, 1.5);
  EXPECT_EQ(parse_rule("ratio:2").str(), "ratio:2");
  for (const char* bad : {"ratio:", "ratio:0.5", "ratio:2x", "top:2", "2", "ratio:nan"})
    EXPECT_TRUE(ThrowsWith([&] { parse_rule(bad); }, {"rule"})) << bad;
  EXPECT_TRUE(ThrowsWith([&] { specialised_experts(p, 3, {2.0}); }, {"domain 3"}));
}

// ---- Pearson ----

TEST(InterpPearson, MatchesTheTwoPassFormulaOnAHandMadeScore) {
  // y: 1 on "comment" tokens. Experts: 0 = y itself (r = 1), 1 = 1 − y on some tokens (r = −1
  // would need all; here it is a partial anti-correlate), 2 never fires (r = 0), 3 arbitrary.
  const std::vector<double> y = {0, 1, 1, 0, 1, 0, 0, 1, 1, 0};
  std::vector<std::vector<double>> x(4, std::vector<double>(y.size(), 0.0));
  const std::vector<double> arbitrary = {0.5, 0, 0.25, 0.9, 0, 0, 0.1, 0.7, 0, 0.3};
  for (size_t t = 0; t < y.size(); ++t) {
    x[0][t] = y[t];
    x[1][t] = t % 2 == 0 ? 1 - y[t] : 0;
    x[3][t] = arbitrary[t];
  }
  auto two_pass = [&](const std::vector<double>& a) {
    double ma = 0, my = 0;
    for (size_t t = 0; t < y.size(); ++t) ma += a[t], my += y[t];
    ma /= static_cast<double>(y.size()), my /= static_cast<double>(y.size());
    double sab = 0, saa = 0, syy = 0;
    for (size_t t = 0; t < y.size(); ++t)
      sab += (a[t] - ma) * (y[t] - my), saa += (a[t] - ma) * (a[t] - ma),
          syy += (y[t] - my) * (y[t] - my);
    return saa > 0 ? sab / std::sqrt(saa * syy) : 0.0;
  };
  for (double center : {0.0, 0.5, 17.0}) {  // any centre gives the same r
    PearsonAccumulator acc(4, center);
    for (size_t t = 0; t < y.size(); ++t) {
      std::vector<int32_t> e;
      std::vector<float> s;
      for (int32_t k = 0; k < 4; ++k)
        if (x[k][t] != 0) e.push_back(k), s.push_back(static_cast<float>(x[k][t]));
      acc.add(y[t], e.data(), s.data(), static_cast<int64_t>(e.size()));
    }
    const std::vector<double> r = acc.correlations();
    EXPECT_NEAR(r[0], 1.0, 1e-12);
    EXPECT_EQ(r[2], 0.0);
    for (int k : {1, 3}) EXPECT_NEAR(r[k], two_pass(x[k]), 1e-6) << "expert " << k;
    EXPECT_LT(r[1], 0.0);
    EXPECT_EQ(acc.tokens(), static_cast<int64_t>(y.size()));
  }
}

TEST(InterpPearson, ReadsScoreFilesAndNamesTheBadEntry) {
  TempDir t("interp_score");
  write_file_atomic(t / "ok.txt", "0 1\n0.5\n-2e-1\n");
  EXPECT_EQ(read_token_scores(t / "ok.txt"), (std::vector<double>{0, 1, 0.5, -0.2}));
  write_file_atomic(t / "bad.txt", "0\n1\nx\n");
  EXPECT_TRUE(ThrowsWith([&] { read_token_scores(t / "bad.txt"); }, {"bad.txt", "entry 3", "'x'"}));
  write_file_atomic(t / "empty.txt", "\n");
  EXPECT_TRUE(ThrowsWith([&] { read_token_scores(t / "empty.txt"); }, {"no numbers"}));
}

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

TEST(InterpContext, WidensTheTokenToItsUtf8CharacterAndTrimsTheEnds) {
  ByteTokenizer tok;
  const std::vector<int32_t> t = tok.encode(
      "ab\xE2\x82\xAC"
      "cd");                              // "ab€cd"
  ContextText c = context_text(t, 3, 2);  // the middle byte of '€'
  EXPECT_EQ(c.left, "ab");
  EXPECT_EQ(c.token, "\xE2\x82\xAC");
  EXPECT_EQ(c.right, "cd");
  c = context_text(t, 0, 1);
  EXPECT_EQ(c.left, "");
  EXPECT_EQ(c.token, "a");
  EXPECT_EQ(c.right, "b");
  // A window that ends inside a character drops that character.
  const std::vector<int32_t> u = tok.encode(
      "\xE2\x82\xAC"
      "x"
      "\xE2\x82\xAC");  // "€x€"
  c = context_text(u, 3, 2);
  EXPECT_EQ(c.left, "");
  EXPECT_EQ(c.token, "x");
  EXPECT_EQ(c.right, "");
  c = context_text(u, 3, 3);
  EXPECT_EQ(c.left, "\xE2\x82\xAC");
  EXPECT_EQ(c.right, "\xE2\x82\xAC");
}

// ---- mask and purge, end to end on a tiny model ----

TEST(InterpMask, RemovesTheRuleSelectionAndRestoresTheModel) {
  const std::vector<Domain> domains = tiny_domains();
  auto model = tiny_model(kMonet);
  ExpertModel em(*model, kind_of(kMonet));
  MaskOptions mo;
  mo.domain = "all";
  mo.select_windows = 0;
  mo.eval_windows = 0;
  mo.batch = 4;
  mo.control = true;
  mo.rule = {1.0};  // an untrained model has few experts at 2×; at 1× each goes to its top domain
  const MaskResult r = run_mask(em, domains, mo);
  // The counts are the rule applied to routing probabilities on the train split.
  CollectOptions co;
  co.batch = 4;
  co.train_split = true;
  co.top_k = 0;
  const auto prob = collect_expert_stats(em, domains, co).sites[0].probabilities();
  ASSERT_EQ(r.rows.size(), 4u);  // per domain: the mask, then its random control
  for (size_t d = 0; d < 2; ++d) {
    EXPECT_EQ(r.rows[2 * d].masked, domains[d].name);
    EXPECT_EQ(r.rows[2 * d].removed[0],
              static_cast<int64_t>(specialised_experts(prob, d, mo.rule).size()));
    EXPECT_EQ(r.rows[2 * d + 1].removed, r.rows[2 * d].removed);
    ASSERT_EQ(r.rows[2 * d].after.size(), 3u);  // two domains and "all"
  }
  int64_t used = 0;
  for (size_t e = 0; e < prob[0].size(); ++e) used += prob[0][e] + prob[1][e] > 0;
  EXPECT_GE(r.rows[0].removed[0] + r.rows[2].removed[0], used);
  // The model is whole again afterwards.
  const auto again = evaluate(*model, domains, 4, kContext, 0);
  for (size_t c = 0; c < again.size(); ++c) EXPECT_DOUBLE_EQ(again[c].loss, r.before[c].loss);
  // A row's losses are those of the model without that row's experts.
  for (size_t s = 0; s < em.sites().size(); ++s)
    em.remove(s, specialised_experts(prob, 1, mo.rule));
  const auto without = evaluate(*model, domains, 4, kContext, 0);
  for (size_t c = 0; c < without.size(); ++c)
    EXPECT_DOUBLE_EQ(without[c].loss, r.rows[2].after[c].loss);
  em.restore();

  const std::string md = mask_markdown(r);
  for (const char* word : {"masked ↓", "code", "prose", "random (as code)", "ratio:1"})
    EXPECT_NE(md.find(word), std::string::npos) << word << "\n" << md;
  TempDir t("interp_mask");
  write_mask_outputs(r, t.path());
  const auto j = nlohmann::json::parse(read_file(t / "mask.json"));
  EXPECT_EQ(j["rows"].size(), 4u);
  EXPECT_NE(read_file(t / "mask.svg").find("<rect"), std::string::npos);
  mo.domain = "nope";
  EXPECT_TRUE(ThrowsWith([&] { run_mask(em, domains, mo); }, {"nope", "code, prose"}));
}

// The score of token p goes with the expert scores of input token p: a score equal to one
// expert's own per-token score correlates with it exactly (r = 1).
TEST(InterpPurge, ScoreIsAlignedWithTheTokensAndThresholdsRemoveWhatTheySay) {
  const std::vector<Domain> domains = tiny_domains();
  auto model = tiny_model(kMonet);
  ExpertModel em(*model, kind_of(kMonet));
  const std::vector<int32_t>& text = domains[0].val;
  PurgeOptions po;
  po.batch = 4;
  po.eval_windows = 0;
  // Expert e's score on every input token, streamed as purge streams the text.
  std::vector<double> y(text.size(), 0.0);
  int64_t target = -1;
  {
    NoGradGuard ng;
    for (const EvalBatch& b : eval_batches(text, po.batch, kContext, 0)) {
      model->forward(b.inputs);
      const TokenScores s = em.scores(0);
      const std::vector<int32_t> tg = b.targets.to_vector<int32_t>();
      if (target < 0) target = s.expert[s.begin[1] - 1];  // an expert of the first token
      for (int64_t r = 0; r < b.inputs.size(0); ++r)
        for (int64_t t = 0; t < kContext; ++t) {
          const int64_t tok = r * kContext + t;
          if (tg[tok] == kIgnoreTarget) continue;
          for (int64_t q = s.begin[tok]; q < s.begin[tok + 1]; ++q)
            if (s.expert[q] == target) y[b.starts[r] + t] = s.score[q];
        }
    }
  }
  po.thresholds = {2.0, 0.999, -1.0};
  const PurgeResult r = run_purge(em, domains, text, y, "code.val", po);
  EXPECT_NEAR(r.correlation[0][target], 1.0, 1e-5);
  EXPECT_EQ(r.tokens, static_cast<int64_t>(text.size()) - 1);
  ASSERT_EQ(r.rows.size(), 3u);
  EXPECT_EQ(r.rows[0].removed[0], 0);  // r ≥ 2: none, and nothing changes
  for (size_t c = 0; c < r.before.size(); ++c)
    EXPECT_DOUBLE_EQ(r.rows[0].after[c].loss, r.before[c].loss);
  EXPECT_DOUBLE_EQ(r.rows[0].text.all, r.text_before.all);
  EXPECT_GE(r.rows[1].removed[0], 1);         // r ≥ 0.999: at least the target
  EXPECT_DOUBLE_EQ(r.rows[2].fraction, 1.0);  // r ≥ −1: every expert
  EXPECT_NE(purge_markdown(r).find("| 0.999 |"), std::string::npos) << purge_markdown(r);
  EXPECT_TRUE(ThrowsWith(
      [&] {
        run_purge(em, domains, text, {1.0, 2.0}, "short", po);
      },
      {"2 numbers", "short"}));
}

// ---- the report ----

TEST(InterpReport, BarPlotDrawsOneRectPerFiniteValue) {
  const std::string svg =
      svg_bar_plot({"a", "b", "c"}, {{"s", {}, {1.0, -0.5, NAN}}, {"t", {}, {0.25, 2, 1}}}, {});
  size_t bars = 0;
  for (size_t at = svg.find("<rect x="); at != std::string::npos; at = svg.find("<rect x=", at + 1))
    ++bars;
  EXPECT_EQ(bars, 5u + 1 + 2);  // five bars, the frame, two legend swatches
  EXPECT_NE(svg.find("s b: -0.5"), std::string::npos);
}

// Headless Chromium opens experts.html, the page's script builds the expert table, and the
// rendered DOM has one row per expert that passes the default filter; a screenshot is taken.
TEST(InterpReport, HtmlRendersInHeadlessChromium) {
  TempDir t("interp_html");
  const std::vector<Domain> domains = tiny_domains();
  auto model = tiny_model(kMonet);
  ExpertModel em(*model, kind_of(kMonet));
  CollectOptions co;
  co.batch = 4;
  co.top_k = 3;
  const ExpertStats st = collect_expert_stats(em, domains, co);
  ReportOptions ro;
  ro.title = "test </script> report";  // must not end the page's script
  write_expert_report(st, domains, t.path(), ro);
  const auto j = nlohmann::json::parse(read_file(t / "experts.json"));
  ASSERT_EQ(j["sites"].size(), 1u);
  const auto& site = j["sites"][0];
  int64_t tokens = 0, expected = 0;
  for (int64_t n : site["tokens"]) tokens += n;
  const int64_t minact = std::max<int64_t>(1, std::llround(static_cast<double>(tokens) / 1000));
  for (const auto& x : site["expert_list"]) {
    int64_t a = 0;
    for (int64_t n : x["active"]) a += n;
    expected += a >= minact;
    EXPECT_LE(x["contexts"].size(), 3u);
  }
  ASSERT_GT(expected, 0);
  EXPECT_EQ(site["expert_list"].size() + site["unused"].get<size_t>(), 16u);

  if (std::system("command -v chromium >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "chromium is not installed (apt-get install chromium to run this test)";
  const std::string chromium =
      "chromium --headless --disable-gpu --no-sandbox --hide-scrollbars "
      "--user-data-dir=" +
      (t / "profile").string() + " --virtual-time-budget=5000 ";
  const std::string page = "file://" + (t / "experts.html").string();
  ASSERT_EQ(std::system((chromium + "--dump-dom " + page + " >" + (t / "dom.html").string() +
                         " 2>/dev/null")
                            .c_str()),
            0);
  const std::string dom = read_file(t / "dom.html");
  const size_t body = dom.find("<tbody>", dom.find("id=\"experts\""));
  ASSERT_NE(body, std::string::npos) << dom.substr(0, 2000);
  const size_t end = dom.find("</tbody>", body);  // (the script below holds the same text)
  int64_t rows = 0;
  for (size_t at = dom.find("<tr class=\"expert-row", body); at < end;
       at = dom.find("<tr class=\"expert-row", at + 1))
    ++rows;
  EXPECT_EQ(rows, expected);
  EXPECT_NE(dom.find("class=\"heat-cell\""), std::string::npos);  // the heat map was drawn
  EXPECT_NE(dom.find("<mark>"), std::string::npos);               // contexts of the top row
  EXPECT_NE(dom.find("test &lt;/script&gt; report"), std::string::npos);
  const fs::path png = t / "report.png";
  ASSERT_EQ(std::system((chromium + "--window-size=1200,1600 --screenshot=" + png.string() + " " +
                         page + " >/dev/null 2>&1")
                            .c_str()),
            0);
  const std::string img = read_file(png);
  ASSERT_GT(img.size(), 1000u);
  EXPECT_EQ(img.substr(1, 3), "PNG");
}
