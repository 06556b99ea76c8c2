// The feed-forward registry (monet/registry.h): every kind is one row, and the config, the model
// builder, `monet table` and the interpretability code read only that row. Checkpoints written
// before the registry existed still load and evaluate to the loss they had.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "monet/expert_layer.h"
#include "monet/monet_layer.h"
#include "monet/peer.h"
#include "monet/registry.h"
#include "monet/smoe.h"
#include "test_train_util.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/evaluate.h"
#include "train/model.h"
#include "train/tokenizer.h"
#include "util/fileio.h"

using namespace monet;
using monet::testing::ThrowsWith;
using json = nlohmann::json;
namespace fs = std::filesystem;

TEST(Registry, EveryKindParsesItsDefaultsAndBuildsOnMeta) {
  const std::vector<std::string> names = moe::ffn_kind_names();
  for (const char* shipped : {"dense", "smoe", "peer", "monet_hd", "monet_vd"})
    EXPECT_EQ(std::count(names.begin(), names.end(), shipped), 1) << shipped;
  for (const moe::FfnKind* kind : moe::ffn_kinds()) {
    SCOPED_TRACE(kind->name);
    EXPECT_FALSE(kind->summary.empty());
    const json params = kind->parse(json::object(), 64, "model.ffn");
    ASSERT_EQ(params.size(), kind->fields.size());  // every key written, defaults filled in
    for (const moe::FieldInfo& f : kind->fields) {
      EXPECT_TRUE(params.contains(f.key)) << f.key;
      EXPECT_FALSE(f.help.empty() || f.type.empty() || f.default_text.empty()) << f.key;
    }
    EXPECT_EQ(kind->parse(params, 64, "model.ffn"), params);  // a fixed point
    Generator g(0);
    auto layer = kind->build(params, 64, {{DType::F32, Device::meta(), 0.02}, &g, nullptr})(0);
    EXPECT_GT(layer->num_parameters(), 0);
    EXPECT_EQ(dynamic_cast<moe::ExpertLayer*>(layer.get()) != nullptr, kind->has_experts);
    EXPECT_EQ(static_cast<bool>(kind->sweep), kind->has_experts);
  }
}

// The defaults are stated once: the Options structs get them from the same table as the config.
TEST(Registry, OptionsDefaultsAreTheConfigDefaults) {
  const Config c = parse_config(json::parse(R"({"model": {"d": 96, "ffn": {"kind": "peer"}}})"));
  const moe::PeerOptions p = moe::PeerOptions::defaults(96);
  EXPECT_EQ(p.sqrt_n, 48);  // d/2, as the config
  EXPECT_EQ(c.model.ffn.params.at("sqrt_n"), p.sqrt_n);
  EXPECT_EQ(c.model.ffn.params.at("d_query"), p.d_query);
  EXPECT_EQ(c.model.ffn.params.at("heads"), p.heads);
  EXPECT_EQ(c.model.ffn.params.at("score"), moe::peer_score_name(p.score));
  const moe::MonetOptions m = moe::MonetOptions::defaults(96, true);
  EXPECT_EQ(m.sqrt_n, 48);
  EXPECT_TRUE(m.vertical);
  EXPECT_DOUBLE_EQ(m.aux_weight, 1e-3);
  const moe::SmoeOptions s = moe::SmoeOptions::defaults(96);
  EXPECT_EQ(s.gating, moe::Gating::Switch);
  EXPECT_EQ(s.experts, 8);
  EXPECT_EQ(s.k(), 1);
}

TEST(Registry, BadNamesAndValuesNameTheKeyAndTheChoices) {
  EXPECT_TRUE(ThrowsWith([] { moe::ffn_kind("densee"); },
                         {"model.ffn.kind", "dense|smoe|peer|monet_hd|monet_vd", "'densee'"}));
  EXPECT_TRUE(ThrowsWith(
      [] { parse_config(json::parse(R"({"model": {"ffn": {"kind": "peer", "score": "max"}}})")); },
      {"model.ffn.score", "softmax|sigmoid", "'max'"}));
  EXPECT_TRUE(ThrowsWith(
      [] { parse_config(json::parse(R"({"model": {"ffn": {"kind": "smoe", "topk": -1}}})")); },
      {"model.ffn.topk", "non-negative", "-1"}));
  EXPECT_TRUE(ThrowsWith(
      [] {
        parse_config(json::parse(R"({"model": {"ffn": {"kind": "peer", "query_batchnorm": 2}}})"));
      },
      {"model.ffn.query_batchnorm", "0 or 1"}));
  // Cross-field rules are checked when the config is read, not when the model is built.
  EXPECT_TRUE(ThrowsWith(
      [] {
        parse_config(json::parse(R"({"model": {"ffn": {"kind": "monet_hd", "sqrt_n": 4,
                                                        "topk": 4}}})"));
      },
      {"topk"}));
}

// Checkpoints written by the version before the registry (tests/data/v0_checkpoints, one per
// kind, d 16, 3 steps) load, and evaluate to the loss that version printed.
TEST(Registry, CheckpointsWrittenBeforeTheRegistryLoadWithTheSameLoss) {
  const fs::path root = fs::path(MONET_SOURCE_DIR) / "tests/data/v0_checkpoints";
  const json expected = json::parse(read_file(root / "expected.json")).at("loss");
  const Corpus corpus = Corpus::load(root / "data", ByteTokenizer());
  for (const auto& [kind, losses] : expected.items()) {
    SCOPED_TRACE(kind);
    Config cfg;
    auto model = load_model(root / kind, &cfg);
    EXPECT_EQ(cfg.model.ffn.kind->name, kind);
    const std::vector<DomainEval> ev = evaluate(*model, corpus.domains(), 16, cfg.model.context, 0);
    ASSERT_EQ(ev.size(), losses.size());
    for (const DomainEval& e : ev)  // printed to 4 decimals
      EXPECT_NEAR(e.loss, losses.at(e.domain).get<double>(), 0.6e-4) << e.domain;
  }
}
