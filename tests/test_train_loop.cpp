// The training loop end to end on a very small model and corpus: resume is bit-identical, a
// non-finite loss stops with the step number and keeps the checkpoint, checkpoints that do not
// fit are refused with the reason, and KV-cache sampling equals full recomputation.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "core/memory.h"
#include "core/ops.h"
#include "test_train_util.h"
#include "train/checkpoint.h"
#include "train/model.h"
#include "train/sample.h"
#include "train/trainer.h"
#include "train_fixtures.h"
#include "util/fileio.h"

using namespace monet;
using monet::testing::TempDir;
using monet::testing::ThrowsWith;
namespace fs = std::filesystem;

using monet::testing::quiet;
using monet::testing::tiny_config;
using monet::testing::write_corpus;

TEST(TrainLoop, ResumeIsBitIdenticalToAnUninterruptedRun) {
  for (const char* ffn : {R"({"kind": "dense"})", R"({"kind": "monet_vd", "sqrt_n": 4, "dim": 4, "topk": 2, "heads": 2, "group": 2})",
                        R"({"kind": "smoe", "experts": 4, "gating": "noisy_topk"})"}) {  // draws noise
    TempDir dir("resume");
    write_corpus(dir / "data");
    Config cfg = tiny_config(dir / "data", ffn);
    TrainOptions full{cfg, dir / "full", false, -1};
    train(full, quiet());
    TrainOptions part{cfg, dir / "part", false, 5};  // stops with a checkpoint after step 5
    EXPECT_EQ(train(part, quiet()).steps, 5);
    TrainOptions rest{cfg, dir / "part", true, -1};
    EXPECT_EQ(train(rest, quiet()).steps, 8);
    for (const char* f : {"model.safetensors", "optimizer.safetensors", "state.json"})
      EXPECT_EQ(read_file(dir / "full" / "checkpoint" / f), read_file(dir / "part" / "checkpoint" / f))
          << ffn << ": " << f << " differs after resume";
    // The raw loss, its EMA (8 points: the least memory, 5 points) and the two evaluations.
    const std::string svg = read_file(dir / "full" / "loss.svg");
    for (const char* name : {">train loss<", ">train loss (EMA 0.8)<", ">val loss (all)<"})
      EXPECT_NE(svg.find(name), std::string::npos) << name;
    EXPECT_EQ(read_file(dir / "full" / "log.jsonl").size() > 0, true);
  }
}

TEST(TrainLoop, NonFiniteLossStopsWithTheStepAndKeepsTheCheckpoint) {
  TempDir dir("nan");
  write_corpus(dir / "data");
  Config cfg = tiny_config(dir / "data");
  cfg.optim.name = nn::OptimizerKind::SGD;
  cfg.optim.lr = 1e30;  // the weights blow up within a few steps
  cfg.optim.grad_clip = 0;
  cfg.optim.warmup_steps = 0;
  cfg.run.checkpoint_every = 1;
  TrainOptions opt{cfg, dir / "run", false, -1};
  std::string message;
  try {
    train(opt, quiet());
  } catch (const Error& e) {
    message = e.what();
  }
  // The checkpoint left behind is complete and loads (its weights are the last finite ones), and
  // the message names its step.
  auto model = load_model(dir / "run");
  const TrainState s = load_train_state(resolve_checkpoint(dir / "run"));
  EXPECT_GE(s.step, 1);
  EXPECT_NE(message.find(fmt::format("training stopped at step {}", s.step + 1)), std::string::npos)
      << message;
  EXPECT_NE(message.find(fmt::format("the last checkpoint, at step {}, is left", s.step)),
            std::string::npos)
      << message;
  for (const Tensor& p : model->parameters())
    for (float v : p.to_vector<float>()) ASSERT_TRUE(std::isfinite(v));
}

TEST(TrainLoop, StateJsonParsesAndMalformedOnesNameTheirSource) {
  const std::string where = "checkpoint state 's.json'";
  const TrainState s = parse_train_state(
      R"({"step": 3, "batcher": {"rng": [1, 2, 3, 4], "batches": 5}, "rng": [6, 7, 8, 9]})", where);
  EXPECT_EQ(s.step, 3);
  EXPECT_EQ(s.batcher.batches, 5);
  EXPECT_EQ(s.batcher.rng, (std::array<uint64_t, 4>{1, 2, 3, 4}));
  EXPECT_EQ(s.rng, (std::array<uint64_t, 4>{6, 7, 8, 9}));
  EXPECT_TRUE(ThrowsWith([&] { parse_train_state(R"({"step": 3})", where); },
                         {"checkpoint state 's.json' is malformed"}));
  EXPECT_TRUE(ThrowsWith([&] { parse_train_state("{", where); }, {"'s.json'", "invalid JSON"}));
  // Numbers that are not integers: a float out of range was cast to an integer (undefined
  // behaviour, which the sanitizer build reports), one in range was truncated.
  const std::string rng = R"("batcher": {"rng": [1, 2, 3, 4], "batches": 5}, "rng": [6, 7, 8, 9])";
  EXPECT_TRUE(ThrowsWith([&] { parse_train_state(R"({"step": 1e300, )" + rng + "}", where); },
                         {"malformed", "'step' must be an integer"}));
  EXPECT_TRUE(ThrowsWith([&] { parse_train_state(R"({"step": 1.5, )" + rng + "}", where); },
                         {"'step' must be an integer"}));
  EXPECT_TRUE(ThrowsWith(
      [&] {
        parse_train_state(
            R"({"step": 3, "batcher": {"rng": [1, -1e300, 3, 4], "batches": 5}, "rng": [6, 7, 8, 9]})",
            where);
      },
      {"'batcher.rng' must hold integers"}));
  EXPECT_TRUE(ThrowsWith(
      [&] {
        parse_train_state(
            R"({"step": 3, "batcher": {"rng": [1, 2, 3, 4], "batches": 5}, "rng": [6, 7, 8]})", where);
      },
      {"'rng' must be an array of 4 integers"}));
  EXPECT_TRUE(ThrowsWith(
      [&] {
        parse_train_state(R"({"step": )" + std::string(10000, '[') + std::string(10000, ']'), where);
      },
      {"s.json", "nested more than 128 levels"}));
}

TEST(TrainLoop, CheckpointsThatDoNotFitAreRefusedWithTheReason) {
  TempDir dir("badckpt");
  write_corpus(dir / "data");
  Config cfg = tiny_config(dir / "data");
  cfg.run.steps = 1;
  cfg.optim.warmup_steps = 0;
  train({cfg, dir / "run", false, -1}, quiet());
  const fs::path ck = dir / "run" / "checkpoint";
  EXPECT_NO_THROW(load_model(dir / "run"));
  // A config whose shapes differ from the weights: the message names a tensor and both shapes.
  std::string good_cfg = read_file(ck / "config.json");
  nlohmann::json j = nlohmann::json::parse(good_cfg);
  j["model"]["ffn"]["hidden"] = 32;
  write_file_atomic(ck / "config.json", j.dump());
  EXPECT_TRUE(ThrowsWith([&] { load_model(dir / "run"); }, {"shape", "[64, 16]", "[32, 16]"}));
  write_file_atomic(ck / "config.json", good_cfg);
  // A truncated weights file.
  std::string w = read_file(ck / "model.safetensors");
  write_file_atomic(ck / "model.safetensors", w.substr(0, w.size() / 2));
  EXPECT_TRUE(ThrowsWith([&] { load_model(dir / "run"); }, {"model.safetensors"}));
  EXPECT_TRUE(ThrowsWith([&] { load_model(dir / "nowhere"); }, {"does not exist"}));
}

// Steps of forward, backward and update hold no memory from one step to the next (a reference
// cycle in any op's backward closure would keep each step's whole graph alive).
TEST(TrainLoop, StepsLeaveNoMemoryBehind) {
  for (const char* ffn : {R"({"kind": "dense"})", R"({"kind": "monet_hd", "sqrt_n": 4, "dim": 4, "topk": 2, "heads": 2})"}) {
    TempDir dir("leak");
    Generator gen(5);
    auto model = build_model(tiny_config(dir.path(), ffn).model, gen);
    nn::AdamW opt(model->named_parameters());
    std::vector<int64_t> held;
    for (int s = 0; s < 4; ++s) {
      {
        Tensor x = from_vector<int32_t>(std::vector<int32_t>(64, 7 + s), {4, 16});
        Tensor loss = cross_entropy(model->forward(x), x);
        Tensor aux = model->aux_loss();
        (aux.defined() ? add(loss, aux) : loss).backward();
        opt.step();
        opt.zero_grad();
      }
      held.push_back(memory::stats(DeviceType::CPU).current);
    }
    EXPECT_EQ(held[1], held[3]) << ffn;  // step 0 allocates the optimizer state
  }
}

TEST(TrainLoop, KvCacheSamplingEqualsFullRecomputation) {
  TempDir dir("sample");
  write_corpus(dir / "data");
  Generator gen(3);
  auto model = build_model(tiny_config(dir / "data").model, gen);
  const std::vector<int32_t> prompt{116, 104, 101, 32};
  std::vector<int32_t> cached = sample(*model, prompt, {10, 0.0, 0, 0, {}});  // greedy
  // The same greedy decoding, recomputing the whole sequence at every step.
  NoGradGuard ng;
  std::vector<int32_t> ids = prompt;
  for (int i = 0; i < 10; ++i) {
    Tensor logits = model->forward(from_vector(ids, {1, static_cast<int64_t>(ids.size())}));
    Tensor last = logits.slice(1, ids.size() - 1, ids.size()).reshape({-1});
    ids.push_back(static_cast<int32_t>(max(last, 0).second.item()));
  }
  EXPECT_EQ(cached, ids);
}

TEST(TrainLoop, SafetensorsRoundTripOfAModelKeepsEveryNameAndValue) {
  TempDir dir("st");
  write_corpus(dir / "data");
  Generator g1(1), g2(2);
  Config cfg = tiny_config(dir / "data");
  auto a = build_model(cfg.model, g1), b = build_model(cfg.model, g2);
  save_checkpoint(dir.path(), *a, nullptr, cfg, {});
  load_model_weights(dir / "checkpoint", *b);
  auto pa = model_state(*a), pb = model_state(*b);
  ASSERT_EQ(pa.size(), pb.size());
  for (size_t i = 0; i < pa.size(); ++i) {
    EXPECT_EQ(pa[i].first, pb[i].first);
    EXPECT_EQ(pa[i].second.to_vector<float>(), pb[i].second.to_vector<float>()) << pa[i].first;
  }
}

// `monet train --device cuda`: the same run on both backends gives the same losses (within float
// reassociation). Skipped, with the driver's reason, where no GPU is usable.
TEST(TrainLoop, CudaRunMatchesTheCpuRun) {
  try {
    parse_device("cuda");
  } catch (const Error& e) {
    GTEST_SKIP() << e.what();
  }
  TempDir dir("cuda_run");
  write_corpus(dir / "data");
  Config cfg = tiny_config(dir / "data");
  cfg.run.steps = 4;
  const TrainResult cpu = train({cfg, dir / "cpu", false, -1}, quiet());
  cfg.run.device = DeviceType::CUDA;
  const TrainResult gpu = train({cfg, dir / "gpu", false, -1}, quiet());
  EXPECT_NEAR(cpu.last_loss, gpu.last_loss, 1e-3 * std::abs(cpu.last_loss));
  ASSERT_EQ(cpu.eval.size(), gpu.eval.size());
  for (size_t i = 0; i < cpu.eval.size(); ++i) EXPECT_NEAR(cpu.eval[i].loss, gpu.eval[i].loss, 1e-3);
}

namespace {
// A tokenizer whose every token stands for `n` bytes of text, to check how bpb counts bytes.
class WideTokens final : public monet::Tokenizer {
 public:
  explicit WideTokens(int64_t n) : n_(n) {}
  int64_t vocab_size() const override { return 256; }
  std::vector<int32_t> encode(std::string_view) const override { return {}; }
  std::string decode(const std::vector<int32_t>&) const override { return ""; }
  std::string name() const override { return "wide"; }
  int64_t token_bytes(int32_t /*id*/) const override { return n_; }

 private:
  int64_t n_;
};
}  // namespace

// bits per byte = total nats / ln 2 / the bytes the scored tokens stand for (the tokenizer's
// token_bytes): with the byte tokenizer the mean loss / ln 2; with tokens of 3 bytes a third of
// it, the loss per token unchanged.
TEST(TrainEval, BitsPerByteDivideTotalNatsByTheTokensBytes) {
  monet::Generator init(3);
  monet::Config cfg = monet::parse_config(
      nlohmann::json::parse(R"({"model": {"d": 16, "layers": 1, "heads": 2, "context": 8}})"));
  auto model = monet::build_model(cfg.model, init);
  std::vector<int32_t> ids;
  for (int i = 0; i < 100; ++i) ids.push_back(40 + i % 50);
  const monet::DomainEval bytes = monet::evaluate_tokens(*model, "x", ids, 4, 8, 0);
  EXPECT_EQ(bytes.bytes, bytes.tokens);
  EXPECT_NEAR(bytes.bpb, bytes.loss / std::log(2.0), 1e-12);
  const WideTokens wide(3);
  const monet::DomainEval w = monet::evaluate_tokens(*model, "x", ids, 4, 8, 0, nullptr, wide);
  EXPECT_EQ(w.tokens, bytes.tokens);
  EXPECT_DOUBLE_EQ(w.loss, bytes.loss);
  EXPECT_EQ(w.bytes, 3 * w.tokens);
  EXPECT_NEAR(w.bpb, bytes.bpb / 3, 1e-12);
}
