// A new user's first hour with `monet`, each friction they met as a test of the real binary, run
// from a directory other than the repository: a short run of the README's config, paths that
// resolve from anywhere, `monet help`, a run killed before its first checkpoint, resuming (and a
// finished run), the loss history on a terminal and the MoE numbers in it, and an export that
// Hugging Face's tools can read.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "test_train_util.h"
#include "util/fileio.h"

using monet::read_file;
using monet::testing::count_of;
using monet::testing::TempDir;
namespace fs = std::filesystem;

namespace {

const std::string kSrc = MONET_SOURCE_DIR;
const std::string kMonet = std::string(MONET_BINARY_DIR) + "/monet";

struct Result {
  int status;
  std::string out, err;
};

// `monet ARGS` run from `cwd`, stdout and stderr captured.
Result monet_in(const fs::path& cwd, const std::string& args) {
  const fs::path out = cwd / ".stdout", err = cwd / ".stderr";
  const std::string cmd = fmt::format("cd '{}' && {} {} >'{}' 2>'{}'", cwd.string(), kMonet, args,
                                      out.string(), err.string());
  const int rc = std::system(cmd.c_str());
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, read_file(out), read_file(err)};
}

// configs/tiny.json, the README's quick start, made small enough for a test; its warm-up (50
// steps) stays as the file has it.
std::string tiny(int steps) {
  return fmt::format(
      "--config {}/configs/tiny.json --set model.d=16 --set model.layers=1 --set model.heads=2 "
      "--set model.context=16 --set model.ffn.hidden=32 --set run.batch=2 --set run.steps={} "
      "--set run.eval_windows=1 --set run.log_every=1",
      kSrc, steps);
}

}  // namespace

// Frictions 1 and 2: `--set run.steps=50` failed on the config's 50 warm-up steps, and from
// another directory the default corpus was not found; the error did not name --data.
TEST(FirstHour, AShortRunOfTheReadmeConfigWorksFromAnotherDirectory) {
  TempDir t("first_short");
  const Result r = monet_in(t.path(), "train " + tiny(3) + " --out run");
  ASSERT_EQ(r.status, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("optim.warmup_steps = 50 is not less than run.steps = 3: warming up over 0 "
                       "steps"),
            std::string::npos)
      << r.out;
  EXPECT_TRUE(fs::exists(t / "run" / "checkpoint" / "model.safetensors"));
  // The run folder finds its corpus from here as well.
  const Result ev = monet_in(t.path(), "eval --ckpt run --windows 1");
  EXPECT_EQ(ev.status, 0) << ev.err;
  EXPECT_NE(ev.out.find("| cpp |"), std::string::npos) << ev.out;
  const Result bad = monet_in(t.path(), "eval --ckpt run --data nowhere");
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.err.find("'nowhere' does not exist"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("--data FOLDER"), std::string::npos) << bad.err;
}

// Friction 3: `monet help` printed the help of `help`; `monet help sae train` failed; a mistyped
// option got no suggestion; a missing --config exited 1 where a missing --ckpt exits 2.
TEST(FirstHour, HelpSuggestionsAndExitStatuses) {
  TempDir t("first_help");
  const Result help = monet_in(t.path(), "help");
  EXPECT_EQ(help.status, 0);
  for (const char* cmd : {"train", "eval", "sample", "export", "sae"})
    EXPECT_NE(help.out.find(fmt::format("\n  {} ", cmd)), std::string::npos) << cmd << help.out;
  EXPECT_EQ(help.out.find("the command (and subcommand"), std::string::npos) << help.out;
  const Result sae = monet_in(t.path(), "help sae train");
  EXPECT_EQ(sae.status, 0) << sae.err;
  EXPECT_NE(sae.out.find("--features"), std::string::npos) << sae.out;
  const Result typo = monet_in(t.path(), "help sae trian");
  EXPECT_EQ(typo.status, 2);
  EXPECT_NE(typo.err.find("(did you mean 'train'?)"), std::string::npos) << typo.err;
  const Result option = monet_in(t.path(), "train --confg x.json");
  EXPECT_EQ(option.status, 2);
  EXPECT_NE(option.err.find("(did you mean '--config'?)"), std::string::npos) << option.err;
  const Result none = monet_in(t.path(), "train");
  EXPECT_EQ(none.status, 2) << none.err;
  EXPECT_NE(none.err.find("monet: error: train: give --config"), std::string::npos) << none.err;
  EXPECT_EQ(count_of(none.err, "monet: error"), 1u) << none.err;
  EXPECT_EQ(monet_in(t.path(), "eval").status, 2);
}

// Friction 4: a second Ctrl-C (here kill -9) before the first checkpoint left a folder that
// `train` refused ("already holds a run") and `--resume` refused ("holds no checkpoint").
TEST(FirstHour, ARunKilledBeforeItsFirstCheckpointCanBeStartedAgain) {
  TempDir t("first_killed");
  auto kill_early = [&] {
    fs::remove_all(t / "run");
    const std::string cmd = fmt::format(
        "cd '{}' && timeout -s KILL 4 {} train {} --set run.steps=1000000 --set "
        "run.checkpoint_every=0 --out run >/dev/null 2>&1",
        t.path().string(), kMonet, tiny(1));
    (void)std::system(cmd.c_str());
    ASSERT_TRUE(fs::exists(t / "run" / "config.json"));
    ASSERT_FALSE(fs::exists(t / "run" / "checkpoint"));
  };
  kill_early();
  const Result again = monet_in(t.path(), "train " + tiny(2) + " --out run");
  EXPECT_EQ(again.status, 0) << again.err;
  EXPECT_NE(again.out.find("stopped before its first checkpoint: starting it over"),
            std::string::npos)
      << again.out;
  kill_early();
  const Result resumed = monet_in(t.path(), "train --resume run --set run.steps=2");
  EXPECT_EQ(resumed.status, 0) << resumed.err;
  EXPECT_TRUE(fs::exists(t / "run" / "checkpoint" / "model.safetensors"));
}

// Friction 5: --resume with --config ignored the config; resuming a finished run evaluated it
// again, appended to log.jsonl and printed "0 tokens/s"; no line said where a run resumed from.
TEST(FirstHour, ResumingSaysFromWhereAndLeavesAFinishedRunAlone) {
  TempDir t("first_resume");
  ASSERT_EQ(monet_in(t.path(), "train " + tiny(3) + " --out run --stop-at 1").status, 0);
  const Result resumed = monet_in(t.path(), "train --resume run");
  EXPECT_EQ(resumed.status, 0) << resumed.err;
  EXPECT_NE(resumed.out.find("resuming run from step 1 of 3"), std::string::npos) << resumed.out;
  const std::string log = read_file(t / "run" / "log.jsonl");
  const Result finished = monet_in(t.path(), "train --resume run");
  EXPECT_EQ(finished.status, 0) << finished.err;
  EXPECT_NE(finished.out.find("is finished (3 of 3 steps): nothing to train"), std::string::npos)
      << finished.out;
  EXPECT_EQ(finished.out.find("tokens/s"), std::string::npos) << finished.out;
  EXPECT_EQ(read_file(t / "run" / "log.jsonl"), log);
  const Result both = monet_in(t.path(), "train --resume run " + tiny(3));
  EXPECT_EQ(both.status, 2);
  EXPECT_NE(both.err.find("--config excludes --resume"), std::string::npos) << both.err;
}

// Friction 6: on a terminal the progress line overwrote itself (no loss history stayed on screen),
// and the MoE numbers were only in log.jsonl.
TEST(FirstHour, TheLossHistoryStaysOnATerminalWithTheMoeNumbers) {
  if (std::system("command -v script >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "needs script(1) (bsdutils) for a pseudo-terminal";
  TempDir t("first_tty");
  // script(1) gives the command a pseudo-terminal; what it printed lands in typescript.
  const std::string cmd = fmt::format(
      "cd '{}' && script -qec \"{} train {} --set 'model.ffn={{\\\"kind\\\":\\\"smoe\\\","
      "\\\"experts\\\":4}}' --out run\" typescript >/dev/null 2>&1",
      t.path().string(), kMonet, tiny(4));
  ASSERT_EQ(std::system(cmd.c_str()), 0) << read_file(t / "typescript");
  std::istringstream lines(read_file(t / "typescript"));
  int kept = 0;
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();  // the terminal's \r\n
    const std::string shown =
        line.substr(line.rfind('\r') == std::string::npos ? 0 : line.rfind('\r') + 1);
    if (shown.rfind("step ", 0) != 0) continue;  // the step lines, not "eval @ step 4"
    ++kept;
    EXPECT_NE(shown.find("| aux "), std::string::npos) << shown;
  }
  EXPECT_EQ(kept, 4) << read_file(t / "typescript");
}

// Friction 8: export wrote no tokenizer, an auto_map naming a modeling_monet.py it did not write,
// and took its folder as a positional argument; the load line said "1.0M parameters, 0.00 GiB".
TEST(FirstHour, AnExportHasItsTokenizerAndNamesNoMissingFile) {
  TempDir t("first_export");
  const std::string vd =
      " --set "
      "'model.ffn={\"kind\":\"monet_vd\",\"sqrt_n\":4,\"heads\":2,\"topk\":2,\"dim\":8,\"group\":1}"
      "'";
  const Result trained = monet_in(t.path(), "train " + tiny(2) + vd + " --out run");
  ASSERT_EQ(trained.status, 0) << trained.err;
  const Result ex = monet_in(t.path(), "export --ckpt run --to hf --out hf");
  ASSERT_EQ(ex.status, 0) << ex.err;
  const auto cfg = nlohmann::json::parse(read_file(t / "hf" / "config.json"));
  EXPECT_FALSE(cfg.contains("auto_map")) << cfg.dump();
  const auto tok = nlohmann::json::parse(read_file(t / "hf" / "tokenizer.json"));
  EXPECT_EQ(tok["model"]["vocab"].size(), 256u);
  EXPECT_EQ(tok["model"]["vocab"]["a"], 'a');
  EXPECT_EQ(tok["model"]["vocab"]["\xc4\xa0"], ' ');  // Ġ, the byte-level stand-in for a space
  EXPECT_TRUE(fs::exists(t / "hf" / "tokenizer_config.json"));
  EXPECT_NE(read_file(t / "hf" / "README.md").find("modeling_monet.py"), std::string::npos);
  // Evaluated from elsewhere (its config's corpus path is relative): found, and the load line
  // gives the size in a unit that shows it.
  fs::create_directories(t / "elsewhere");
  const Result ev = monet_in(t / "elsewhere", "eval --ckpt ../hf --windows 1");
  EXPECT_EQ(ev.status, 0) << ev.err;
  EXPECT_NE(ev.err.find(" KiB as float32"), std::string::npos) << ev.err;
  EXPECT_EQ(monet_in(t.path(), "export --ckpt run --to hf hf2").status, 2);
}

// Startup: a run that never asks for a CUDA device opens neither the CUDA runtime's shared
// library nor cuBLAS (~0.5 s of every process when they were linked the usual way).
TEST(FirstHour, ACpuRunOpensNoCudaLibrary) {
  TempDir t("first_startup");
  const std::string cmd = fmt::format("cd '{}' && LD_DEBUG=files {} demo >/dev/null 2>ld.txt",
                                      t.path().string(), kMonet);
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  const std::string ld = read_file(t / "ld.txt");
  ASSERT_NE(ld.find("file=libc.so.6"), std::string::npos) << "LD_DEBUG printed nothing";
  EXPECT_EQ(ld.find("libcublas"), std::string::npos);
  EXPECT_EQ(ld.find("libcudart"), std::string::npos);
}
