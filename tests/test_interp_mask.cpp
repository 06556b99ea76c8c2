// Selecting experts and removing them (eval/experts.h, eval/mask.h, eval/purge.h) against hand-made
// answers and slow references written here: the selection rule on a hand-made routing table,
// Pearson correlations against the two-pass textbook formula, the reading of score files, and, end
// to end on a tiny model, `mask` (the rule's selection removed, the model whole again afterwards)
// and `purge` (the alignment of a score with the tokens, thresholds removing what they say).
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "eval/experts.h"
#include "eval/mask.h"
#include "eval/control.h"
#include "eval/purge.h"
#include "interp_fixtures.h"
#include "test_train_util.h"
#include "train/corpus.h"
#include "train/evaluate.h"
#include "util/fileio.h"

using namespace monet;
using namespace monet::interp;
using namespace monet::testing::interp_fixtures;
using monet::testing::TempDir;
using monet::testing::ThrowsWith;

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
  mo.control_draws = 3;
  mo.rule = {1.0};  // an untrained model has few experts at 2×; at 1× each goes to its top domain
  const MaskResult r = run_mask(em, domains, mo);
  // The counts are the rule applied to routing probabilities on the train split.
  CollectOptions co;
  co.batch = 4;
  co.train_split = true;
  co.top_k = 0;
  const auto prob = collect_expert_stats(em, domains, co).sites[0].probabilities();
  ASSERT_EQ(r.rows.size(), 8u);  // per domain: the mask, then its three random controls
  for (size_t d = 0; d < 2; ++d) {
    const MaskRow& row = r.rows[4 * d];
    EXPECT_EQ(row.masked, domains[d].name);
    EXPECT_TRUE(row.control_of.empty());
    EXPECT_EQ(row.removed[0], static_cast<int64_t>(specialised_experts(prob, d, mo.rule).size()));
    ASSERT_EQ(row.after.size(), 3u);  // two domains and "all"
    for (size_t c = 1; c <= 3; ++c) {
      const MaskRow& control = r.rows[4 * d + c];
      EXPECT_EQ(control.control_of, domains[d].name);
      EXPECT_EQ(control.removed, row.removed);
      ASSERT_EQ(control.mass_ratio.size(), em.sites().size());
      EXPECT_GT(control.mass_ratio[0], 0.0);
    }
  }
  int64_t used = 0;
  for (size_t e = 0; e < prob[0].size(); ++e) used += prob[0][e] + prob[1][e] > 0;
  EXPECT_GE(r.rows[0].removed[0] + r.rows[4].removed[0], used);
  // The model is whole again afterwards.
  const auto again = evaluate(*model, domains, 4, kContext, 0);
  for (size_t c = 0; c < again.size(); ++c) EXPECT_DOUBLE_EQ(again[c].loss, r.before[c].loss);
  // A row's losses are those of the model without that row's experts.
  for (size_t s = 0; s < em.sites().size(); ++s)
    em.remove(s, specialised_experts(prob, 1, mo.rule));
  const auto without = evaluate(*model, domains, 4, kContext, 0);
  for (size_t c = 0; c < without.size(); ++c)
    EXPECT_DOUBLE_EQ(without[c].loss, r.rows[4].after[c].loss);
  em.restore();

  const std::string md = mask_markdown(r);
  for (const char* word : {"masked ↓", "code", "prose", "random (as code)", "ratio:1"})
    EXPECT_NE(md.find(word), std::string::npos) << word << "\n" << md;
  TempDir t("interp_mask");
  write_mask_outputs(r, t.path());
  const auto j = nlohmann::json::parse(read_file(t / "mask.json"));
  EXPECT_EQ(j["rows"].size(), 8u);
  EXPECT_EQ(j["rows"][1]["control_of"], domains[0].name);
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
  po.split = false;  // the score is streamed over the whole text below
  po.control_draws = 0;
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

// The split: experts chosen on the first half, losses measured on the second; the controls are
// as many text passes as draws, for rows that removed something.
TEST(InterpPurge, SelectsOnOneHalfAndMeasuresTheOther) {
  const std::vector<Domain> domains = tiny_domains();
  auto model = tiny_model(kMonet);
  ExpertModel em(*model, kind_of(kMonet));
  const std::vector<int32_t>& text = domains[0].val;
  std::vector<double> y(text.size());
  for (size_t i = 0; i < y.size(); ++i) y[i] = text[i] % 2;  // odd bytes: "high"
  PurgeOptions po;
  po.batch = 4;
  po.eval_windows = 0;
  po.thresholds = {2.0, -1.0};
  po.control_draws = 2;
  const PurgeResult r = run_purge(em, domains, text, y, "code.val", po);
  const size_t half = text.size() / 2;
  EXPECT_TRUE(r.split);
  EXPECT_EQ(r.tokens, static_cast<int64_t>(half) - 1);  // the first half's predicted tokens
  EXPECT_EQ(r.text_before.n_high + r.text_before.n_low,
            static_cast<int64_t>(text.size() - half) - 1);  // the second half's
  EXPECT_TRUE(r.rows[0].controls.empty());                 // nothing removed: no control
  EXPECT_EQ(r.rows[1].controls.size(), 2u);
  EXPECT_NE(purge_markdown(r).find("first half"), std::string::npos);
  po.split = false;
  const PurgeResult whole = run_purge(em, domains, text, y, "code.val", po);
  EXPECT_EQ(whole.tokens, static_cast<int64_t>(text.size()) - 1);
}

// A matched control has the selection's size and, within the tolerance, its mass, even when the
// selection holds the heaviest experts, which a uniform draw of the same size almost never matches.
TEST(InterpControl, RandomSetsMatchSizeAndMass) {
  std::vector<double> mass(100);
  for (size_t e = 0; e < mass.size(); ++e) mass[e] = static_cast<double>(e + 1);
  std::vector<int64_t> heavy;
  for (int64_t e = 90; e < 100; ++e) heavy.push_back(e);  // mass 955 of 5050
  Generator g1(1), g2(2);
  const MatchedDraw a = matched_random_experts(mass, heavy, g1);
  const MatchedDraw b = matched_random_experts(mass, heavy, g2);
  for (const MatchedDraw* d : {&a, &b}) {
    ASSERT_EQ(d->experts.size(), heavy.size());
    EXPECT_TRUE(std::is_sorted(d->experts.begin(), d->experts.end()));
    EXPECT_EQ(std::adjacent_find(d->experts.begin(), d->experts.end()), d->experts.end());
    double m = 0;
    for (int64_t e : d->experts) m += mass[static_cast<size_t>(e)];
    EXPECT_DOUBLE_EQ(m, d->mass);
    EXPECT_TRUE(d->matched);
    EXPECT_NEAR(d->mass / 955.0, 1.0, 0.05);
    EXPECT_DOUBLE_EQ(d->ratio, d->mass / 955.0);
  }
  EXPECT_NE(a.experts, b.experts);  // random, not a fixed answer
  EXPECT_TRUE(matched_random_experts(mass, {}, g1).experts.empty());
  std::vector<double> zero(10, 0.0);
  zero[3] = 1;
  const MatchedDraw z = matched_random_experts(zero, {0, 1}, g1);  // mass 0: avoid expert 3
  EXPECT_TRUE(z.matched);
  EXPECT_EQ(std::count(z.experts.begin(), z.experts.end(), 3), 0);
  EXPECT_TRUE(ThrowsWith([&] { matched_random_experts(mass, {100}, g1); }, {"expert 100 of 100"}));
}
