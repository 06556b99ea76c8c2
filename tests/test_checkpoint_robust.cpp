// Damaged and edited checkpoints are refused with one clear error, never loaded into a model that
// computes something else: non-finite weights or optimizer state, a state.json a run could not
// have written, a config.json edited after the weights were saved, a size that overflows.
#include <gtest/gtest.h>

#include <limits>
#include <nlohmann/json.hpp>

#include "test_train_util.h"
#include "train/checkpoint.h"
#include "train/safetensors.h"
#include "train/trainer.h"
#include "train_fixtures.h"
#include "util/fileio.h"

using namespace monet;
using monet::testing::quiet;
using monet::testing::TempDir;
using monet::testing::ThrowsWith;
using monet::testing::tiny_config;
using monet::testing::write_corpus;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

// A finished 3-step run in dir/run; returns its checkpoint folder.
fs::path tiny_run(const TempDir& dir) {
  write_corpus(dir / "data");
  Config cfg = tiny_config(dir / "data");
  cfg.run.steps = 3;
  cfg.optim.warmup_steps = 0;
  train({cfg, dir / "run", false, -1}, quiet());
  return dir / "run" / "checkpoint";
}

// Rewrites one value of one tensor of a safetensors file, keeping its metadata.
void poke(const fs::path& file, const std::string& tensor, float value) {
  Safetensors st = load_safetensors(file);
  for (auto& [name, t] : st.tensors)
    if (name.rfind(tensor, 0) == 0) t.data<float>()[1] = value;
  save_safetensors(file, st.tensors, st.metadata);
}

}  // namespace

TEST(CheckpointRobust, NonFiniteWeightsAndOptimizerStateAreRefused) {
  TempDir dir("ck_nan");
  const fs::path ck = tiny_run(dir);
  const std::string weights = read_file(ck / "model.safetensors");
  poke(ck / "model.safetensors", "layers.1.ffn.w1", std::numeric_limits<float>::quiet_NaN());
  EXPECT_TRUE(ThrowsWith([&] { load_model(dir / "run"); },
                         {"model.safetensors", "layers.1.ffn.w1", "nan", "element 1", "damaged"}));
  write_file_atomic(ck / "model.safetensors", weights);
  EXPECT_NO_THROW(load_model(dir / "run"));
  poke(ck / "optimizer.safetensors", "exp_avg_sq.", std::numeric_limits<float>::infinity());
  Config cfg = load_checkpoint_config(ck);
  cfg.run.steps = 4;
  EXPECT_TRUE(ThrowsWith(
      [&] {
        train({cfg, dir / "run", true, -1}, quiet());
      },
      {"optimizer.safetensors", "exp_avg_sq.", "inf"}));
}

TEST(CheckpointRobust, StateJsonARunCouldNotHaveWrittenIsRefused) {
  const std::string where = "state 'x'";
  const std::string good =
      R"({"step": 3, "batcher": {"rng": [1, 2, 3, 4], "batches": 3}, "rng": [5, 6, 7, 8]})";
  EXPECT_EQ(parse_train_state(good, where).step, 3);
  const std::pair<const char*, const char*> bad[] = {
      {R"({"step": 3, "batcher": {"rng": [1, 2, 3], "batches": 3}, "rng": [5, 6, 7, 8]})",
       "'batcher.rng' must be an array of 4"},
      {R"({"step": 3, "batcher": {"rng": [1, 2, 3, 4, 5], "batches": 3}, "rng": [5, 6, 7, 8]})",
       "'batcher.rng' must be an array of 4"},
      {R"({"step": 3, "batcher": {"rng": [1, -2, 3, 4], "batches": 3}, "rng": [5, 6, 7, 8]})",
       "'batcher.rng' must hold integers in [0, 2^64)"},
      {R"({"step": 3, "batcher": {"rng": [1, 2, 3, 4], "batches": 3}, "rng": [0, 0, 0, 0]})",
       "'rng' is all zeros"},
      {R"({"step": -1, "batcher": {"rng": [1, 2, 3, 4], "batches": 3}, "rng": [5, 6, 7, 8]})",
       "'step' must be an integer in [0, 2^63)"},
      {R"({"step": 2.5, "batcher": {"rng": [1, 2, 3, 4], "batches": 3}, "rng": [5, 6, 7, 8]})",
       "'step' must be an integer"},
      {R"({"step": 3, "batcher": {"rng": [1, 2, 3, 4], "batches": -4}, "rng": [5, 6, 7, 8]})",
       "'batcher.batches' must be an integer"},
      {R"({"step": 3, "step": 4, "batcher": {"rng": [1, 2, 3, 4], "batches": 3}, "rng": [5, 6, 7, 8]})",
       "duplicated key 'step'"},
      {R"({"step": 3})", "must be an object with step, batcher"},
      {R"([1, 2])", "must be an object"},
      {R"({"step": 3,)", "invalid JSON"},
  };
  for (const auto& [text, words] : bad)
    EXPECT_TRUE(ThrowsWith([&] { parse_train_state(text, where); }, {where, words})) << text;
}

TEST(CheckpointRobust, AConfigEditedAfterTheWeightsWereSavedIsRefused) {
  TempDir dir("ck_edit");
  const fs::path ck = tiny_run(dir);
  const std::string good = read_file(ck / "config.json");
  // Each edit keeps every tensor shape, so only the recorded config can tell.
  for (const auto& [key, value, words] :
       {std::tuple{"heads", json(1), "model.heads: 2 when saved, 1 in config.json"},
        std::tuple{"norm_eps", json(1e-3), "model.norm_eps"},
        std::tuple{"ffn", json{{"kind", "dense"}, {"activation", "gelu"}, {"hidden", 64}},
                   "model.ffn.activation: \"relu2\" when saved, \"gelu\" in config.json"}}) {
    json j = json::parse(good);
    j["model"][key] = value;
    write_file_atomic(ck / "config.json", j.dump());
    EXPECT_TRUE(ThrowsWith([&] { load_model(dir / "run"); }, {"another model config", words}))
        << key;
  }
  write_file_atomic(ck / "config.json", good);
  EXPECT_NO_THROW(load_model(dir / "run"));
}

// model.d = 2^62 once crashed eval, sample and train --resume (a size product overflowed and an
// undersized buffer was written past its end).
TEST(CheckpointRobust, HugeSizesAreRefusedNotCrashedOn) {
  TempDir dir("ck_huge");
  const fs::path ck = tiny_run(dir);
  for (const auto& [key, value, words] : {std::tuple{"d", int64_t{1} << 62, "model.d"},
                                          std::tuple{"vocab", int64_t{1} << 40, "model.vocab"},
                                          std::tuple{"context", int64_t{1} << 45, "model.context"},
                                          std::tuple{"layers", int64_t{1} << 40, "model.layers"}}) {
    json j = json::parse(read_file(dir / "run" / "config.json"));
    j["model"][key] = value;
    write_file_atomic(ck / "config.json", j.dump());
    EXPECT_TRUE(ThrowsWith([&] { load_model(dir / "run"); }, {words})) << key;
  }
  EXPECT_TRUE(ThrowsWith(
      [] {
        shape_numel({int64_t{1} << 40, int64_t{1} << 40});
      },
      {"more than 2^63 elements"}));
  EXPECT_TRUE(ThrowsWith(
      [] {
        empty({int64_t{1} << 31, int64_t{1} << 31}, DType::F64);
      },
      {"more than 2^63 bytes"}));
}
