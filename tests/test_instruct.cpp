// Instruction tuning (issue #17): the response-only loss against a hand computation, the batches'
// masking, freezing by parameter group, the generator's determinism and held-out families, exact
// match, and fine-tuning resumed bit for bit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "core/ops.h"
#include "eval/instruct_eval.h"
#include "monet/registry.h"
#include "test_train_util.h"
#include "train/checkpoint.h"
#include "train/instruct.h"
#include "train/model.h"
#include "train/sample.h"
#include "train/trainer.h"
#include "train_fixtures.h"
#include "util/fileio.h"

using namespace monet;
using monet::testing::quiet;
using monet::testing::TempDir;
using monet::testing::ThrowsWith;
namespace fs = std::filesystem;

namespace {

// A small instruction folder: two held-in families (upper-casing, first letter) and a held-out one.
void write_instruct(const fs::path& dir) {
  fs::create_directories(dir);
  const std::vector<std::string> words = {"ab", "cat", "dog", "ox", "bee", "emu", "yak", "gnu"};
  std::string train, test;
  auto line = [](const char* fam, const char* cluster, const std::string& p, const std::string& r) {
    return nlohmann::json{{"family", fam}, {"cluster", cluster}, {"prompt", p}, {"response", r}}
               .dump() +
           "\n";
  };
  for (size_t i = 0; i < words.size(); ++i) {
    std::string up = words[i];
    for (char& c : up) c = static_cast<char>(c - 'a' + 'A');
    std::string& out = i < 6 ? train : test;
    out += line("upper", "transform", "up " + words[i], up);
    out += line("first", "extract", "first " + words[i], words[i].substr(0, 1));
  }
  test += line("last", "held", "last cat", "t");
  write_file_atomic(dir / "train.jsonl", train);
  write_file_atomic(dir / "test.jsonl", test);
  write_file_atomic(dir / "families.json", R"({"families": [
    {"name": "upper", "cluster": "transform", "held_out": false},
    {"name": "first", "cluster": "extract", "held_out": false},
    {"name": "last", "cluster": "held", "held_out": true}]})");
}

Config instruct_config(const fs::path& data, const std::string& ffn = R"({"kind": "dense"})") {
  Config c = monet::testing::tiny_config(data, ffn);
  c.model.context = 24;
  c.run.checkpoint_every = 0;
  return c;
}

}  // namespace

// The template's tokens, and which targets a batch scores: the response and its "\n" only.
TEST(Instruct, BatchScoresTheResponseTokensOnly) {
  const InstructExample e{"f", "c", "ab", "xy"};
  EXPECT_EQ(instruct_text(e), "ab\nA: xy\n");
  const InstructTokens t = tokenize_instruct(byte_tokenizer(), e);
  ASSERT_EQ(t.ids.size(), 9u);
  EXPECT_EQ(t.prompt, 6);
  const EvalBatch b = instruct_batch({&t, &t}, 10);
  const std::vector<int32_t> in = b.inputs.to_vector<int32_t>(), y = b.targets.to_vector<int32_t>();
  const std::vector<int32_t> want_y = {-100, -100, -100, -100, -100, 'x', 'y', '\n', -100, -100};
  const std::vector<int32_t> want_in = {'a', 'b', '\n', 'A', ':', ' ', 'x', 'y', 0, 0};
  for (int r = 0; r < 2; ++r)
    for (int i = 0; i < 10; ++i) {
      EXPECT_EQ(y[r * 10 + i], want_y[i]) << i;
      EXPECT_EQ(in[r * 10 + i], want_in[i]) << i;
    }
  EXPECT_EQ(b.scored, 6);
  EXPECT_TRUE(ThrowsWith([&] { instruct_batch({&t}, 7); }, {"9 tokens", "context of 8", "7"}));
}

// The fine-tuning loss of a padded batch of two examples of different lengths equals the mean, over
// their response tokens, of −log softmax computed by hand from each example run alone (unpadded);
// response_losses gives each example's own sum.
TEST(Instruct, ResponseOnlyLossEqualsTheHandComputedOne) {
  Config cfg = instruct_config("unused");
  Generator g(3);
  auto model = build_model(cfg.model, g);
  model->eval();
  const std::vector<InstructExample> ex = {{"f", "c", "up cat", "CAT"},
                                           {"f", "c", "first ox", "o"}};
  std::vector<InstructTokens> toks;
  for (const auto& e : ex) toks.push_back(tokenize_instruct(byte_tokenizer(), e));
  const EvalBatch b = instruct_batch({&toks[0], &toks[1]}, cfg.model.context);
  NoGradGuard ng;
  const double batch_loss = cross_entropy(model->forward(b.inputs), b.targets).item();

  double total = 0;
  int64_t count = 0;
  std::vector<double> per_example;
  for (const InstructTokens& t : toks) {
    const int64_t L = static_cast<int64_t>(t.ids.size());
    const std::vector<int32_t> inputs(t.ids.begin(), t.ids.end() - 1);
    const std::vector<float> z = model->forward(from_vector(inputs, {1, L - 1})).to_vector<float>();
    double mine = 0;
    for (int64_t pos = t.prompt - 1; pos < L - 1;
         ++pos) {  // predicts ids[pos + 1], a response token
      double sum = 0;
      for (int64_t v = 0; v < 256; ++v) sum += std::exp(static_cast<double>(z[pos * 256 + v]));
      mine += std::log(sum) - z[pos * 256 + t.ids[pos + 1]];
      ++count;
    }
    per_example.push_back(mine);
    total += mine;
  }
  EXPECT_EQ(count, b.scored);
  EXPECT_NEAR(batch_loss, total / static_cast<double>(count), 1e-5);
  const std::vector<ResponseLoss> losses = response_losses(*model, toks, 2);
  for (size_t i = 0; i < toks.size(); ++i) {
    EXPECT_NEAR(losses[i].nats, per_example[i], 1e-4);
    EXPECT_EQ(losses[i].tokens, static_cast<int64_t>(toks[i].ids.size()) - toks[i].prompt);
  }
}

// Every parameter lands in one group; a frozen group's parameters are bit-identical after steps
// while the others move, for every kind with experts and for the three groups.
TEST(Instruct, FrozenGroupsStayBitIdenticalAndTheRestMoves) {
  TempDir dir("freeze");
  write_instruct(dir / "data");
  for (const char* ffn :
       {R"({"kind": "smoe", "experts": 4})",
        R"({"kind": "peer", "sqrt_n": 4, "heads": 2, "topk": 2, "d_query": 8})",
        R"({"kind": "monet_vd", "sqrt_n": 4, "dim": 4, "topk": 2, "heads": 2, "group": 2})",
        R"({"kind": "monet_hd", "sqrt_n": 4, "dim": 4, "topk": 2, "heads": 2, "group": 2})"}) {
    for (const char* freeze : {"routers", "experts", "non-experts", "routers,experts"}) {
      Config cfg = instruct_config(dir / "data", ffn);
      cfg.finetune.freeze = freeze;
      Generator g(1);
      auto model = build_model(cfg.model, g);
      model->train();
      const std::vector<moe::ParamGroup> frozen = moe::parse_freeze(freeze);
      const Trainable t = trainable_parameters(*model, cfg);
      auto opt = make_optimizer(cfg.optim, t.params);
      std::vector<std::pair<std::string, std::vector<float>>> before;
      for (const auto& [name, p] : model->named_parameters())
        before.emplace_back(name, p.to_vector<float>());
      const InstructData data = load_instruct_data(dir / "data");
      std::vector<InstructTokens> toks;
      for (const auto& e : data.train) toks.push_back(tokenize_instruct(byte_tokenizer(), e));
      InstructBatcher batcher(toks, 5);
      for (int step = 0; step < 3; ++step) {
        auto [x, y] = batcher.next(4, cfg.model.context);
        train_step(*model, *opt, x, y, 1.0, step, "");
      }
      const moe::FfnKind& kind = *cfg.model.ffn.kind;
      int moved = 0, kept = 0;
      size_t i = 0;
      for (const auto& [name, p] : model->named_parameters()) {
        const bool is_frozen =
            std::find(frozen.begin(), frozen.end(), moe::param_group(name, kind)) != frozen.end();
        const bool same = p.to_vector<float>() == before[i++].second;
        if (is_frozen) {
          EXPECT_TRUE(same) << ffn << " --freeze " << freeze << ": " << name << " moved";
          ++kept;
        } else {
          moved += same ? 0 : 1;
        }
      }
      EXPECT_GT(kept, 0) << ffn << " " << freeze;
      EXPECT_GT(moved, 0) << ffn << " " << freeze;
    }
  }
  // The groups by name; a dense model has no routers to freeze; bad values name the key.
  const moe::FfnKind& smoe = moe::ffn_kind("smoe");
  EXPECT_EQ(moe::param_group("layers.1.ffn.w1", smoe), moe::ParamGroup::Experts);
  EXPECT_EQ(moe::param_group("layers.1.ffn.gate.weight", smoe), moe::ParamGroup::Routers);
  EXPECT_EQ(moe::param_group("layers.1.attn.wq.weight", smoe), moe::ParamGroup::NonExperts);
  EXPECT_EQ(moe::param_group("embed.weight", smoe), moe::ParamGroup::NonExperts);
  Config dense = instruct_config(dir / "data");
  dense.finetune.freeze = "routers";
  Generator g(1);
  auto model = build_model(dense.model, g);
  EXPECT_TRUE(ThrowsWith([&] { trainable_parameters(*model, dense); },
                         {"finetune.freeze", "'dense' has no routers"}));
  EXPECT_TRUE(ThrowsWith([] { moe::parse_freeze("gates"); }, {"finetune.freeze", "'gates'"}));
  EXPECT_TRUE(ThrowsWith([] { moe::parse_freeze("experts,experts"); }, {"twice"}));
  EXPECT_TRUE(ThrowsWith([] { moe::parse_freeze("experts,routers,non-experts"); },
                         {"nothing would train"}));
}

// A fine-tuning run stopped and resumed ends bit-identical to an uninterrupted one, for the dense
// model and for SMoE with frozen routers and the aux loss off.
TEST(Instruct, FinetuneResumeIsBitIdentical) {
  TempDir dir("ft_resume");
  monet::testing::write_corpus(dir / "corpus");
  write_instruct(dir / "data");
  for (const char* ffn : {R"({"kind": "dense"})", R"({"kind": "smoe", "experts": 4})"}) {
    Config pre = instruct_config(dir / "corpus", ffn);
    pre.run.steps = 4;
    pre.optim.warmup_steps = 0;
    train({pre, dir / "pre", false, -1, true}, quiet());
    Config cfg = pre;
    cfg.run.data = (dir / "data").string();
    cfg.run.steps = 6;
    cfg.finetune.init = (dir / "pre").string();
    if (std::string(ffn).find("smoe") != std::string::npos) {
      cfg.finetune.freeze = "routers";
      cfg.finetune.aux = false;
    }
    const TrainResult full = train({cfg, dir / "full", false, -1, true}, quiet());
    EXPECT_EQ(full.eval.back().domain, "all");  // the response loss on test.jsonl
    EXPECT_GT(full.eval.back().tokens, 0);
    EXPECT_EQ(train({cfg, dir / "part", false, 3, true}, quiet()).steps, 3);
    EXPECT_EQ(train({cfg, dir / "part", true, -1}, quiet()).steps, 6);
    for (const char* f : {"model.safetensors", "optimizer.safetensors", "state.json"})
      EXPECT_EQ(read_file(dir / "full" / "checkpoint" / f),
                read_file(dir / "part" / "checkpoint" / f))
          << ffn << ": " << f;
    // The weights started from the pretrained ones: a fine-tuned model differs from both.
    auto a = load_model(dir / "pre"), b = load_model(dir / "full");
    EXPECT_NE(a->named_parameters()[0].second.to_vector<float>(),
              b->named_parameters()[0].second.to_vector<float>());
  }
}

// The answer is the generated text before the first newline; exact match is byte equality.
TEST(Instruct, ExactMatchScoresHandMadeAnswers) {
  EXPECT_EQ(answer_of("python\nfoo"), "python");
  EXPECT_EQ(answer_of("python"), "python");
  EXPECT_EQ(answer_of("\npython"), "");
  EXPECT_EQ(answer_of("python \n"), "python ");  // not trimmed: "python " != "python"
  // greedy_answer is greedy sampling cut at the newline.
  Config cfg = instruct_config("unused");
  Generator g(2);
  auto model = build_model(cfg.model, g);
  const std::vector<int32_t> prompt = byte_tokenizer().encode("up cat\nA: ");
  SampleOptions so;
  so.temperature = 0;
  so.tokens = 8;
  const std::vector<int32_t> ids = sample(*model, prompt, so);
  const std::string generated = byte_tokenizer().decode({ids.begin() + prompt.size(), ids.end()});
  EXPECT_EQ(greedy_answer(*model, byte_tokenizer(), prompt, 8), answer_of(generated));
}

// instruct_eval counts per family, cluster and held-in / held-out, and its predictions' answers
// are greedy_answer's.
TEST(Instruct, EvalGroupsFamiliesAndHeldOut) {
  TempDir dir("ieval");
  write_instruct(dir / "data");
  const InstructData data = load_instruct_data(dir / "data");
  Config cfg = instruct_config(dir / "data");
  Generator g(4);
  auto model = build_model(cfg.model, g);
  const InstructEvalResult r = instruct_eval(*model, byte_tokenizer(), data, {});
  ASSERT_EQ(r.families.size(), 3u);
  EXPECT_EQ(r.held_in.examples, 4);
  EXPECT_EQ(r.held_out.examples, 1);
  EXPECT_EQ(r.all.examples, 5);
  ASSERT_EQ(r.predictions.size(), 5u);
  int64_t correct = 0;
  for (const InstructPrediction& p : r.predictions) {
    const InstructTokens t =
        tokenize_instruct(byte_tokenizer(), {p.family, "", p.prompt, p.expected});
    EXPECT_EQ(p.answer, greedy_answer(*model, byte_tokenizer(),
                                      {t.ids.begin(), t.ids.begin() + t.prompt}, 32));
    EXPECT_EQ(p.correct, p.answer == p.expected);
    correct += p.correct;
  }
  EXPECT_EQ(r.all.correct, correct);
  // An untrained model answers (almost) nothing right, so the counts above may all be 0 = 0. Make
  // the expected responses of two examples what the model answers — the first "upper" one (held
  // in) and the "last" one (held out) — and the counts must move by exactly those two.
  InstructData scored = data;
  ASSERT_EQ(scored.test.size(), r.predictions.size());
  int64_t upper_seen = 0, made_in = 0;
  for (InstructExample& e : scored.test) {
    const bool first_upper = e.family == "upper" && upper_seen++ == 0;
    if (!first_upper && e.family != "last") continue;
    const auto p = std::find_if(r.predictions.begin(), r.predictions.end(),
                                [&](const InstructPrediction& q) { return q.prompt == e.prompt; });
    ASSERT_NE(p, r.predictions.end()) << e.prompt;
    if (first_upper && !p->correct) ++made_in;  // unless it was right already
    e.response = p->answer;
  }
  const InstructEvalResult r2 = instruct_eval(*model, byte_tokenizer(), scored, {});
  EXPECT_EQ(r2.held_out.correct, 1);
  EXPECT_EQ(r2.held_in.correct, r.held_in.correct + made_in);
  EXPECT_EQ(r2.all.correct, r2.held_in.correct + r2.held_out.correct);
  for (const auto& f : r2.families) {
    if (f.name == "last") {
      EXPECT_EQ(f.correct, 1);
    }
  }
  const std::string md = instruct_markdown(r);
  EXPECT_NE(md.find("| last | held | held out | "), std::string::npos) << md;
}

// The data's own checks: a held-out family in train.jsonl, an unknown family, a bad line.
TEST(Instruct, BadDataIsRefusedWithTheFileAndLine) {
  TempDir dir("ibad");
  write_instruct(dir / "data");
  write_file_atomic(
      dir / "data" / "train.jsonl",
      read_file(dir / "data" / "train.jsonl") +
          R"({"family": "last", "cluster": "held", "prompt": "last ox", "response": "x"})"
          "\n");
  EXPECT_TRUE(
      ThrowsWith([&] { load_instruct_data(dir / "data"); }, {"train.jsonl", "'last' is held out"}));
  write_file_atomic(dir / "data" / "train.jsonl", "{\"family\": \"upper\"}\n");
  EXPECT_TRUE(ThrowsWith([&] { load_instruct_data(dir / "data"); },
                         {"train.jsonl:1", "'cluster'", "missing"}));
  write_file_atomic(dir / "data" / "train.jsonl", "not json\n");
  EXPECT_TRUE(ThrowsWith([&] { load_instruct_data(dir / "data"); },
                         {"train.jsonl:1", "not a JSON object"}));
  write_instruct(dir / "data");
  const InstructData data = load_instruct_data(dir / "data");
  EXPECT_TRUE(ThrowsWith([&] { select_families(data, data.train, "upper,lower", "--families"); },
                         {"--families", "no family 'lower'", "upper, first, last"}));
  EXPECT_EQ(select_families(data, data.train, "first", "x").size(), 6u);
}

// The committed mixture: at least 12 families in 3 or more clusters, held-out families only in
// test.jsonl; and scripts/make_instruct_data.py writes exactly the committed files again.
TEST(Instruct, CommittedMixtureIsWhatTheGeneratorWrites) {
  const fs::path committed = fs::path(MONET_SOURCE_DIR) / "data" / "toy4_instruct";
  const InstructData data = load_instruct_data(committed);  // checks held-out ∉ train itself
  std::set<std::string> clusters, held_out;
  for (const FamilyInfo& f : data.families) {
    clusters.insert(f.cluster);
    if (f.held_out) held_out.insert(f.name);
  }
  EXPECT_GE(data.families.size(), 12u);
  EXPECT_GE(clusters.size(), 3u);
  EXPECT_FALSE(held_out.empty());
  for (const InstructExample& e : data.train) ASSERT_EQ(held_out.count(e.family), 0u) << e.family;
  for (const std::string& f : held_out)
    EXPECT_TRUE(std::any_of(data.test.begin(), data.test.end(),
                            [&](const InstructExample& e) { return e.family == f; }));
  for (const InstructExample& e : data.train)  // every example fits the interp models' context
    ASSERT_LE(tokenize_instruct(byte_tokenizer(), e).ids.size(), 129u) << e.prompt;

  if (std::system("python3 --version > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "python3 is not installed (scripts/deps.sh installs it)";
  TempDir dir("igen");
  const std::string cmd =
      fmt::format("cd {} && python3 scripts/make_instruct_data.py --out {} > /dev/null",
                  MONET_SOURCE_DIR, (dir / "gen").string());
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  for (const char* f : {"train.jsonl", "test.jsonl", "families.json", "README.md"})
    EXPECT_EQ(read_file(dir / "gen" / f), read_file(committed / f)) << f << " differs";
}
