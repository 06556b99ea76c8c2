// The released MONET models' Hugging Face layout (train/hf_checkpoint.h), against the fixtures of
// eval/reference/hf_monet.py: small random models in that exact layout (HF field and tensor names,
// bf16 weights, I64 BatchNorm counters, a SentencePiece tokenizer from Debian's spm_train; VD in
// two shards with grouped-query attention, HD in one file with tied embeddings) and the logits and
// greedy tokens of a float64 PyTorch forward written from the authors' modelling file.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "core/ops.h"
#include "test_train_util.h"
#include "train/checkpoint.h"
#include "train/hf_checkpoint.h"
#include "train/model.h"
#include "train/sample.h"
#include "train/trainer.h"
#include "train_fixtures.h"
#include "util/fileio.h"

using namespace monet;
using monet::testing::TempDir;
using monet::testing::ThrowsWith;
namespace fs = std::filesystem;

namespace {

fs::path fixture(const std::string& name) {
  return fs::path(MONET_SOURCE_DIR) / "tests/data/hf" / name;
}

nlohmann::json reference(const std::string& kind) {
  return nlohmann::json::parse(read_file(fixture("monet_" + kind + "_reference.json")));
}

Tensor ids_tensor(const std::vector<int32_t>& ids) {
  return from_vector(ids, {1, static_cast<int64_t>(ids.size())});
}

// The weights are bf16 on both sides, so the difference is only float32 arithmetic here against
// float64 there: measured 5.1e-6 (VD) and 6.7e-6 (HD) on logits of magnitude ~1-5.
constexpr double kLogitTolerance = 5e-5;

// A MONET-VD trained here for a few steps (in `dir`), loaded from its checkpoint.
std::shared_ptr<nn::Transformer> train_tiny_vd(const fs::path& dir, Config& cfg) {
  monet::testing::write_corpus(dir / "data");
  cfg = monet::testing::tiny_config(
      dir / "data",
      R"({"kind": "monet_vd", "heads": 2, "sqrt_n": 8, "dim": 4, "topk": 2, "group": 2})");
  cfg.run.steps = 4;
  cfg.run.checkpoint_every = 0;
  train({cfg, dir / "run", false, -1}, monet::testing::quiet());
  return load_model(dir / "run");
}

}  // namespace

class HfFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(HfFixture, LogitsTokensAndGreedySampleMatchTheReference) {
#ifndef MONET_WITH_SENTENCEPIECE
  GTEST_SKIP()
      << "built without SentencePiece (libsentencepiece-dev): the fixture ships a tokenizer.model";
#endif
  const nlohmann::json ref = reference(GetParam());
  const fs::path dir = fixture("monet_" + GetParam());
  ASSERT_TRUE(is_hf_checkpoint(dir));
  Config cfg;
  auto model = load_model(dir, &cfg);
  EXPECT_EQ(cfg.model.ffn.kind->name, "monet_" + GetParam());

  // The tokenizer.model gives the reference's ids (after LLaMA's bos).
  const auto tok = load_tokenizer(dir);
  EXPECT_EQ(tok->name(), "sentencepiece");
  std::vector<int32_t> ids = tok->encode(ref["text"].get<std::string>());
  ids.insert(ids.begin(), tok->bos_id());
  ASSERT_EQ(ids, ref["ids"].get<std::vector<int32_t>>());

  NoGradGuard ng;
  const std::vector<float> got = model->forward(ids_tensor(ids)).to_vector<float>();
  const auto& want = ref["logits"];
  const size_t V = want[0].size();
  ASSERT_EQ(got.size(), want.size() * V);
  double worst = 0;
  for (size_t t = 0; t < want.size(); ++t)
    for (size_t v = 0; v < V; ++v)
      worst = std::max(worst, std::abs(got[t * V + v] - want[t][v].get<double>()));
  EXPECT_LT(worst, kLogitTolerance) << "largest logit difference";

  SampleOptions so;
  so.tokens = static_cast<int64_t>(ref["greedy"].size());
  so.temperature = 0;
  const std::vector<int32_t> prompt = ref["greedy_prompt_ids"].get<std::vector<int32_t>>();
  std::vector<int32_t> out = sample(*model, prompt, so);
  EXPECT_EQ(std::vector<int32_t>(out.begin() + static_cast<int64_t>(prompt.size()), out.end()),
            ref["greedy"].get<std::vector<int32_t>>());
}

INSTANTIATE_TEST_SUITE_P(HfCheckpoint, HfFixture, ::testing::Values("vd", "hd"));

TEST(HfCheckpoint, TensorNamesMapBothWays) {
  EXPECT_EQ(hf_tensor_name("embed.weight"), "model.embed_tokens.weight");
  EXPECT_EQ(hf_tensor_name("layers.11.attn.wk.weight"), "model.layers.11.self_attn.k_proj.weight");
  EXPECT_EQ(hf_tensor_name("layers.0.ffn.router.norm2.running_var"),
            "model.layers.0.router.norm2.running_var");
  EXPECT_EQ(hf_tensor_name("layers.3.ffn.v12.weight"), "model.layers.3.moe.v12.weight");
  EXPECT_EQ(our_tensor_name("model.layers.4.router.norm1.num_batches_tracked"), "");
  Config cfg;
  auto model = load_model(fixture("monet_vd"), &cfg);
  for (const auto& [name, t] : model_state(*model))
    EXPECT_EQ(our_tensor_name(hf_tensor_name(name)), name);
  EXPECT_TRUE(ThrowsWith([] { our_tensor_name("model.layers.x.moe.u1.weight"); },
                         {"'model.layers.x.moe.u1.weight'", "no counterpart"}));
  EXPECT_TRUE(ThrowsWith([] { hf_tensor_name("layers.0.mlp.w1.weight"); }, {"no counterpart"}));
}

// The released VD sizes (config fields of the published config.json files; 850M and 4.1B from the
// paper's Table 6, the 1.4B file as released), counted on the meta device.
TEST(HfCheckpoint, ParameterCountsOfTheReleasedVdSizes) {
  auto count = [](int d, int layers, int heads, int moe_heads, int moe_dim) {
    const nlohmann::json hf = {{"model_type", "monet"},
                               {"hidden_size", d},
                               {"num_hidden_layers", layers},
                               {"num_attention_heads", heads},
                               {"num_key_value_heads", heads},
                               {"vocab_size", 32000},
                               {"max_position_embeddings", 2048},
                               {"moe_dim", moe_dim},
                               {"moe_experts", 512},
                               {"moe_heads", moe_heads},
                               {"moe_topk", 8},
                               {"moe_groups", 4},
                               {"moe_decompose", "vertical"}};
    return static_cast<double>(count_parameters(config_from_hf(hf, "test").model));
  };
  // 1.4B: the paper's Table 8 count; 850M: the released bf16 file is 1.71 GB, 855M parameters.
  EXPECT_NEAR(count(2048, 24, 16, 8, 16) / 1e9, 1.465, 0.0005);
  EXPECT_NEAR(count(1536, 24, 12, 6, 12) / 1e9, 0.855, 0.003);
  EXPECT_NEAR(count(3072, 32, 24, 12, 24) / 1e9, 4.17, 0.01);
}

// Train a tiny MONET-VD here, export it, load the export back: the same function, exactly in f32;
// in bf16 as close as its rounding allows.
TEST(HfCheckpoint, ExportOfATrainedModelLoadsBackWithTheSameLogits) {
  TempDir t("hf_export");
  Config cfg;
  auto trained = train_tiny_vd(t.path(), cfg);
  export_hf(*trained, cfg.model, t / "hf32", DType::F32);
  export_hf(*trained, cfg.model, t / "hf16", DType::BF16);
  ASSERT_TRUE(is_hf_checkpoint(t / "hf32"));
  Config back;
  auto f32 = load_model(t / "hf32", &back);
  EXPECT_EQ(back.model, cfg.model);
  auto b16 = load_model(t / "hf16");
  NoGradGuard ng;
  const Tensor ids = ids_tensor({1, 40, 100, 7, 33, 90, 12, 5});
  const std::vector<float> want = trained->forward(ids).to_vector<float>();
  EXPECT_EQ(f32->forward(ids).to_vector<float>(), want);
  const std::vector<float> got16 = b16->forward(ids).to_vector<float>();
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i)
    worst = std::max(worst, double(std::abs(got16[i] - want[i])));
  EXPECT_LT(worst, 0.05);
  EXPECT_TRUE(ThrowsWith([&] { export_hf(*trained, cfg.model, t / "hf32", DType::F32); },
                         {"already exists"}));
  Config dense = monet::testing::tiny_config(t / "data");
  EXPECT_TRUE(ThrowsWith([&] { export_hf(*trained, dense.model, t / "dense", DType::F32); },
                         {"MONET models", "monet_hd or monet_vd", "'dense'"}));
}

// Each a one-line error naming the file and what is wrong.
TEST(HfCheckpoint, BadFoldersAreRefusedByName) {
  TempDir t("hf_bad");
  auto copy = [&](const std::string& name) {
    const fs::path d = t / name;
    fs::copy(fixture("monet_vd"), d, fs::copy_options::recursive);
    return d;
  };
  auto edit_config = [](const fs::path& d, const char* key, const nlohmann::json& v) {
    nlohmann::json j = nlohmann::json::parse(read_file(d / "config.json"));
    j[key] = v;
    write_file_atomic(d / "config.json", j.dump());
  };
  fs::path d = copy("shard");
  fs::remove(d / "model-00002-of-00002.safetensors");
  EXPECT_TRUE(
      ThrowsWith([&] { load_model(d); }, {"model-00002-of-00002.safetensors", "does not exist"}));

  d = copy("index");
  nlohmann::json index = nlohmann::json::parse(read_file(d / "model.safetensors.index.json"));
  index["weight_map"]["model.layers.0.moe.u3.weight"] = "model-00001-of-00002.safetensors";
  write_file_atomic(d / "model.safetensors.index.json", index.dump());
  EXPECT_TRUE(
      ThrowsWith([&] { load_model(d); }, {"'model.layers.0.moe.u3.weight'", "not in its shard"}));

  d = copy("shape");
  edit_config(d, "num_key_value_heads", 4);
  EXPECT_TRUE(ThrowsWith([&] { load_model(d); }, {"attn.wk.weight", "shape [32, 64]", "[64, 64]"}));

  d = copy("decompose");
  edit_config(d, "moe_decompose", "diagonal");
  EXPECT_TRUE(
      ThrowsWith([&] { load_model(d); }, {"config.json", "moe_decompose \"diagonal\"",
                                          "\"horizontal\" (MONET-HD)", "\"vertical\" (MONET-VD)"}));

  d = copy("topk");
  edit_config(d, "moe_topk", 16);
  EXPECT_TRUE(
      ThrowsWith([&] { load_model(d); }, {"config.json", "topk 16", "sqrt_n = 16", "moe_topk"}));

  d = copy("memory");  // a config far larger than its files: refused before anything is read
  edit_config(d, "hidden_size", 65536);
  edit_config(d, "num_attention_heads", 512);
  edit_config(d, "num_key_value_heads", 512);
  EXPECT_TRUE(
      ThrowsWith([&] { load_model(d); }, {"loading needs", "GiB of float32 weights", "available"}));

  d = copy("tokenizer");
  write_file_atomic(d / "tokenizer.model", "not a sentencepiece model\n");
  EXPECT_TRUE(ThrowsWith([&] { load_tokenizer(d); }, {"tokenizer.model"}));

  d = t / "pickle";
  fs::create_directories(d);
  fs::copy_file(fixture("monet_vd") / "config.json", d / "config.json");
  write_file_atomic(d / "pytorch_model.bin", "PK");
  EXPECT_TRUE(ThrowsWith([&] { load_model(d); }, {"pytorch_model.bin", "pickle", "safetensors"}));
}

// The exported folder in the other direction: eval/reference/hf_monet.py (a forward written from
// the authors' modelling file) reads it and computes the same logits. Needs Debian's
// python3-torch, which CI does not install: skipped there, run where it is.
TEST(HfCheckpoint, ExportLoadsInThePyTorchReferenceForward) {
  if (std::system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "needs /usr/bin/python3 with torch (apt-get install python3-torch)";
  TempDir t("hf_torch");
  Config cfg;
  auto model = train_tiny_vd(t.path(), cfg);
  export_hf(*model, cfg.model, t / "hf", DType::F32);
  const std::vector<int32_t> ids = {100, 101, 102, 32, 109, 97, 105, 110, 40, 41, 58, 10};
  const std::string cmd = fmt::format(
      "/usr/bin/python3 {}/eval/reference/hf_monet.py reference {} --ids {} --out {} >/dev/null",
      MONET_SOURCE_DIR, (t / "hf").string(), fmt::join(ids, ","), (t / "ref.json").string());
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const nlohmann::json ref = nlohmann::json::parse(read_file(t / "ref.json"));
  NoGradGuard ng;
  const std::vector<float> got = model->forward(ids_tensor(ids)).to_vector<float>();
  const auto& want = ref["logits"];
  const size_t V = want[0].size();
  ASSERT_EQ(got.size(), want.size() * V);
  for (size_t p = 0; p < want.size(); ++p)
    for (size_t v = 0; v < V; ++v)
      ASSERT_NEAR(got[p * V + v], want[p][v].get<double>(), kLogitTolerance) << p << ", " << v;
}
