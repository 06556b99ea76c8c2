// The training loop under misuse and interruption: a run folder is never overwritten by accident,
// a resumed checkpoint past run.steps is refused with the fix, a stop before any checkpoint says
// so, gradient accumulation equals the larger batch, and Ctrl-C saves and resumes.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <csignal>
#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "core/ops.h"
#include "test_train_util.h"
#include "train/checkpoint.h"
#include "train/model.h"
#include "train/sample.h"
#include "train/trainer.h"
#include "train_fixtures.h"
#include "util/fileio.h"
#include "util/interrupt.h"

using namespace monet;
using monet::testing::quiet;
using monet::testing::TempDir;
using monet::testing::ThrowsWith;
using monet::testing::tiny_config;
using monet::testing::write_corpus;
namespace fs = std::filesystem;

TEST(TrainRobust, ARunFolderIsNotOverwrittenWithoutForce) {
  TempDir dir("overwrite");
  write_corpus(dir / "data");
  Config cfg = tiny_config(dir / "data");
  cfg.run.steps = 2;
  cfg.optim.warmup_steps = 0;
  train({cfg, dir / "run", false, -1}, quiet());
  const std::string before = read_file(dir / "run" / "checkpoint" / "model.safetensors");
  EXPECT_TRUE(ThrowsWith(
      [&] {
        train({cfg, dir / "run", false, -1}, quiet());
      },
      {"already holds a run", "checkpoint", "log.jsonl", "monet train --resume", "--force"}));
  EXPECT_EQ(read_file(dir / "run" / "checkpoint" / "model.safetensors"), before) << "touched";
  cfg.run.seed = 8;  // another run: other weights
  TrainOptions forced{cfg, dir / "run", false, -1};
  forced.force = true;
  EXPECT_EQ(train(forced, quiet()).steps, 2);
  EXPECT_NE(read_file(dir / "run" / "checkpoint" / "model.safetensors"), before);
  // An empty folder, or one holding other files, is fine.
  fs::create_directories(dir / "other");
  write_file_atomic(dir / "other" / "notes.txt", "mine");
  EXPECT_EQ(train({cfg, dir / "other", false, -1}, quiet()).steps, 2);
  EXPECT_EQ(read_file(dir / "other" / "notes.txt"), "mine");
}

TEST(TrainRobust, ResumingPastRunStepsNamesTheFix) {
  TempDir dir("past");
  write_corpus(dir / "data");
  Config cfg = tiny_config(dir / "data");
  train({cfg, dir / "run", false, -1}, quiet());  // 8 steps
  cfg.run.steps = 5;
  EXPECT_TRUE(ThrowsWith(
      [&] {
        train({cfg, dir / "run", true, -1}, quiet());
      },
      {"step 8", "past run.steps = 5", "--set run.steps="}));
}

TEST(TrainRobust, AStopBeforeAnyCheckpointSaysSo) {
  TempDir dir("nockpt");
  write_corpus(dir / "data");
  Config cfg = tiny_config(dir / "data");
  cfg.optim.name = nn::OptimizerKind::SGD;
  cfg.optim.lr = 1e30;
  cfg.optim.grad_clip = 0;
  cfg.optim.warmup_steps = 0;
  cfg.run.checkpoint_every = 0;  // only at the end
  EXPECT_TRUE(ThrowsWith(
      [&] {
        train({cfg, dir / "run", false, -1}, quiet());
      },
      {"training stopped at step", "no checkpoint was written yet"}));
}

// Two micro-batches of B windows give the step of one batch of 2B windows: the batcher draws the
// same windows in the same order, the loss is their mean, and the gradients add up. Dense layers
// only: batch statistics (routers' BatchNorm, aux losses) see one micro-batch at a time.
TEST(TrainRobust, GradientAccumulationEqualsTheLargerBatch) {
  TempDir dir("accum");
  write_corpus(dir / "data");
  Config big = tiny_config(dir / "data");
  big.run.batch = 4;
  big.run.eval_every = 0;
  big.run.checkpoint_every = 0;
  Config micro = big;
  micro.run.batch = 2;
  micro.run.accumulate = 2;
  const TrainResult a = train({big, dir / "big", false, -1}, quiet());
  const TrainResult b = train({micro, dir / "micro", false, -1}, quiet());
  EXPECT_NEAR(a.last_loss, b.last_loss, 1e-5);
  auto wa = load_model(dir / "big"), wb = load_model(dir / "micro");
  const auto pa = wa->named_parameters(), pb = wb->named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (size_t i = 0; i < pa.size(); ++i) {
    const std::vector<float> x = pa[i].second.to_vector<float>(),
                             y = pb[i].second.to_vector<float>();
    for (size_t k = 0; k < x.size(); ++k)
      ASSERT_NEAR(x[k], y[k], 1e-5) << pa[i].first << " element " << k;
  }
  // And it is not the same as the smaller batch alone.
  Config small = micro;
  small.run.accumulate = 1;
  EXPECT_GT(std::abs(train({small, dir / "small", false, -1}, quiet()).last_loss - a.last_loss),
            1e-4);
}

// The real program: SIGINT during training finishes the step, writes the checkpoint, says how to
// resume and exits with 130; the resumed run completes.
TEST(TrainRobust, CtrlCSavesACheckpointAndResumes) {
  TempDir dir("sigint");
  write_corpus(dir / "data");
  nlohmann::json cfg =
      nlohmann::json::parse(read_file(fs::path(MONET_SOURCE_DIR) / "configs/tiny.json"));
  cfg["run"]["data"] = (dir / "data").string();
  cfg["run"]["steps"] = 100000;  // far more than the test waits for
  cfg["model"]["context"] = 16;
  cfg["optim"]["warmup_steps"] = 0;
  write_file_atomic(dir / "cfg.json", cfg.dump());
  const std::string monet = std::string(MONET_BINARY_DIR) + "/monet";
  const fs::path run = dir / "run", err = dir / "output.txt";  // stdout and stderr
  // Start, wait for the first logged step, send SIGINT, wait for the exit.
  const std::string script =
      monet + " train --config " + (dir / "cfg.json").string() + " --out " + run.string() + " >" +
      err.string() + " 2>&1 & pid=$!; for i in $(seq 600); do " + "[ -s " +
      (run / "log.jsonl").string() + " ] && break; sleep 0.05; done; kill -INT $pid; " +
      "wait $pid; exit $?";
  const int rc = std::system(("bash -c '" + script + "'").c_str());
  ASSERT_TRUE(WIFEXITED(rc));
  EXPECT_EQ(WEXITSTATUS(rc), 130) << read_file(err);
  const std::string said = read_file(err);
  const TrainState s = load_train_state(resolve_checkpoint(run));
  EXPECT_GE(s.step, 1);
  EXPECT_NE(said.find(fmt::format("interrupted at step {} — resume with `monet train --resume {}`",
                                  s.step, run.string())),
            std::string::npos)
      << said;
  EXPECT_TRUE(fs::exists(run / "loss.svg"));
  // Resume to a nearby end.
  const std::string resume = monet + " train --resume " + run.string() +
                             " --set run.steps=" + std::to_string(s.step + 2) +
                             " --set run.eval_windows=2 >/dev/null 2>&1";
  EXPECT_EQ(std::system(resume.c_str()), 0);
  EXPECT_EQ(load_train_state(resolve_checkpoint(run)).step, s.step + 2);
}

// Past the context the window slides (the last T/2 tokens are re-read into a fresh cache), and a
// prompt longer than the context keeps its last T - 1 tokens; both say so once. The same greedy
// decoding recomputed in full, window by window, gives the same tokens.
TEST(TrainRobust, SamplingSlidesPastTheContextAndKeepsTheEndOfALongPrompt) {
  TempDir dir("slide");
  Generator gen(3);
  auto model = build_model(tiny_config(dir.path()).model, gen);  // context 16
  const int64_t T = 16;
  for (const size_t prompt_len : {size_t{4}, size_t{40}}) {
    SCOPED_TRACE(prompt_len);
    std::vector<int32_t> prompt(prompt_len);
    for (size_t i = 0; i < prompt_len; ++i) prompt[i] = static_cast<int32_t>(97 + i % 26);
    std::vector<std::string> notes;
    const std::vector<int32_t> got = sample(*model, prompt, {40, 0.0, 0, 0, {}},
                                            [&](const std::string& s) { notes.push_back(s); });
    ASSERT_EQ(got.size(), prompt_len + 40);
    EXPECT_TRUE(std::equal(prompt.begin(), prompt.end(), got.begin()));
    const bool long_prompt = prompt_len >= static_cast<size_t>(T);
    ASSERT_EQ(notes.size(), long_prompt ? 2u : 1u);
    if (long_prompt) {
      EXPECT_NE(notes[0].find("only its last 15 are seen"), std::string::npos);
    }
    EXPECT_NE(notes.back().find("the window slides"), std::string::npos);
    // The reference: no cache, the window recomputed in full before every token.
    NoGradGuard ng;
    std::vector<int32_t> ids = prompt;
    int64_t seen = std::min<int64_t>(static_cast<int64_t>(prompt_len), T - 1);
    for (int i = 0; i < 40; ++i) {
      const std::vector<int32_t> w(ids.end() - seen, ids.end());
      Tensor logits = model->forward(from_vector(w, {1, seen}));
      Tensor last = logits.slice(1, seen - 1, seen).reshape({-1});
      ids.push_back(static_cast<int32_t>(max(last, 0).second.item()));
      seen = seen < T ? seen + 1 : T / 2;
    }
    EXPECT_EQ(got, ids);
  }
}

// The signal handler runs on the scope's own stack, never over the data that oneDNN's JIT kernels
// keep below the stack pointer (util/interrupt.h); the previous stack comes back with the scope.
TEST(Interrupt, HandlerRunsOnItsOwnStack) {
  stack_t before{};
  sigaltstack(nullptr, &before);
  {
    monet::InterruptScope scope("test");
    EXPECT_FALSE(scope.interrupted());
    std::raise(SIGINT);
    EXPECT_TRUE(scope.interrupted());
    EXPECT_EQ(scope.signal(), SIGINT);
    EXPECT_TRUE(scope.handled_on_own_stack());
  }
  stack_t after{};
  sigaltstack(nullptr, &after);
  EXPECT_EQ(after.ss_sp, before.ss_sp);
  EXPECT_EQ(after.ss_flags, before.ss_flags);
}
