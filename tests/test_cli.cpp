// The `monet` binary on bad input: every case ends with exit status 1 and one line on stderr that
// names the problem — never a crash or a stack trace.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "test_train_util.h"
#include "train/config.h"
#include "util/fileio.h"

using monet::testing::TempDir;
namespace fs = std::filesystem;

namespace {

struct Run {
  int status;
  std::string err;
};

// Runs build/monet with `args` (stdout discarded), capturing stderr.
Run monet_cli(const std::string& args, const fs::path& tmp) {
  const fs::path err = tmp / "stderr.txt";
  const std::string cmd =
      std::string(MONET_BINARY_DIR) + "/monet " + args + " >/dev/null 2>" + err.string();
  const int rc = std::system(cmd.c_str());
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, monet::read_file(err)};
}

// Runs build/monet with `args` and returns its stdout (stderr discarded).
std::string monet_stdout(const std::string& args, const fs::path& tmp) {
  const fs::path out = tmp / "stdout.txt";
  const std::string cmd =
      std::string(MONET_BINARY_DIR) + "/monet " + args + " >" + out.string() + " 2>/dev/null";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  return monet::read_file(out);
}

// The error line, without the start-up banner.
std::string error_line(const std::string& err) {
  const size_t at = err.find("monet: error: ");
  return at == std::string::npos ? "" : err.substr(at);
}

void expect_clean_error(const Run& r, const std::string& word, int status = 1) {
  EXPECT_EQ(r.status, status) << r.err;
  const std::string line = error_line(r.err);
  EXPECT_NE(line.find(word), std::string::npos) << "stderr: " << r.err;
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "more than one line: " << r.err;
}

}  // namespace

TEST(Cli, VersionAndHelp) {
  TempDir t("cli_version");
  EXPECT_EQ(monet_cli("--version", t.path()).status, 0);
  EXPECT_EQ(monet_cli("--help", t.path()).status, 0);
  EXPECT_EQ(monet_cli("train --help", t.path()).status, 0);
}

TEST(Cli, BadInputEndsWithOneLineNamingTheProblem) {
  TempDir t("cli_bad");
  const fs::path data = t / "data";
  fs::create_directories(data);
  monet::write_file_atomic(data / "a.train.txt", std::string(300, 'x'));
  monet::write_file_atomic(data / "a.val.txt", std::string(300, 'y'));
  fs::create_directories(t / "empty");
  monet::write_file_atomic(t / "empty" / "a.train.txt", "");
  monet::write_file_atomic(t / "empty" / "a.val.txt", "abc");
  monet::write_file_atomic(t / "malformed.json", "{\"model\": {\"d\": 16,");
  monet::write_file_atomic(t / "wrongtype.json", "{\"run\": {\"steps\": \"ten\"}}");
  monet::write_file_atomic(t / "unknown.json", "{\"model\": {\"dd\": 16}}");
  const std::string base =
      "{\"model\": {\"d\": 16, \"layers\": 1, \"heads\": 2, \"context\": CTX}, "
      "\"run\": {\"steps\": 2, \"batch\": 2, \"data\": \"DATA\"}}";
  auto config = [&](const std::string& name, int ctx, const fs::path& folder) {
    std::string s = base;
    s.replace(s.find("CTX"), 3, std::to_string(ctx));
    s.replace(s.find("DATA"), 4, folder.string());
    monet::write_file_atomic(t / name, s);
    return (t / name).string();
  };
  const std::string out = " --out " + (t / "run").string();
  expect_clean_error(monet_cli("train --config " + (t / "missing.json").string(), t.path()),
                     "no such file");
  expect_clean_error(monet_cli("train --config " + (t / "malformed.json").string(), t.path()),
                     "invalid JSON");
  expect_clean_error(monet_cli("train --config " + (t / "wrongtype.json").string(), t.path()),
                     "run.steps");
  expect_clean_error(monet_cli("train --config " + (t / "unknown.json").string(), t.path()),
                     "model.dd");
  expect_clean_error(
      monet_cli("train --config " + config("empty.json", 8, t / "empty") + out, t.path()),
      "a.train.txt' is empty");
  expect_clean_error(monet_cli("train --config " + config("long.json", 400, data) + out, t.path()),
                     "401");
  expect_clean_error(
      monet_cli("train --config " + config("ok.json", 8, data) + " --set model.dd=3" + out,
                t.path()),
      "model.dd");
  expect_clean_error(monet_cli("eval --ckpt " + (t / "nothing").string(), t.path()),
                     "does not exist");
  expect_clean_error(
      monet_cli("sample --ckpt " + (t / "nothing").string() + " --prompt hi", t.path()),
      "does not exist");
}

// `monet kinds` prints every registry row's keys with their defaults; a kind it does not know is
// one error line naming the kinds it does.
TEST(Cli, KindsListsEveryKindWithItsKeysAndDefaults) {
  TempDir t("cli_kinds");
  const std::string all = monet_stdout("kinds", t.path());
  for (const char* line : {"dense: ", "smoe: ", "peer: ", "monet_hd: ", "monet_vd: ",
                           "model.ffn.hidden      integer [4·d]  positive; hidden width",
                           "model.ffn.gating             softmax|noisy_topk|switch|gshard [switch]",
                           "model.ffn.d_query          integer [d/2]"})
    EXPECT_NE(all.find(line), std::string::npos) << line << " not in:\n" << all;
  const std::string peer = monet_stdout("kinds peer", t.path());
  EXPECT_NE(peer.find("model.ffn.query_batchnorm  0|1 [1]"), std::string::npos) << peer;
  EXPECT_EQ(peer.find("smoe"), std::string::npos) << peer;
  expect_clean_error(monet_cli("kinds densee", t.path()), "dense|smoe|peer|monet_hd|monet_vd");
}

// A bad command line exits with 2 (an error in the work with 1), in one line that names the
// command, suggests the nearest name and says where the options are listed.
TEST(Cli, UsageErrorsExitWithTwoAndSuggestTheNearestName) {
  TempDir t("cli_usage");
  expect_clean_error(monet_cli("trian", t.path()), "no command 'trian' (did you mean 'train'?)", 2);
  expect_clean_error(monet_cli("eval", t.path()), "eval: --ckpt is required (monet help eval)", 2);
  expect_clean_error(monet_cli("sample --ckpt x --prompt a --temperature -1", t.path()),
                     "--temperature: must be >= 0, got -1", 2);
  expect_clean_error(monet_cli("sample --ckpt x --prompt a --top-k -3", t.path()),
                     "--top-k: must be >= 0, got -3", 2);
  expect_clean_error(monet_cli("eval --ckpt x --batch 0", t.path()), "must be positive, got 0", 2);
  expect_clean_error(monet_cli("eval --ckpt x --bogus", t.path()), "--bogus", 2);
  expect_clean_error(monet_cli("help evl", t.path()), "(did you mean 'eval'?)", 2);
  expect_clean_error(monet_cli("train --config x.json --gemm mkl", t.path()), "--gemm: mkl", 2);
  expect_clean_error(monet_cli("eval --ckpt x --precision fp16", t.path()), "--precision: fp16", 2);
  EXPECT_EQ(monet_cli("help", t.path()).status, 0);
}

// bf16 runs on the CPU only: refused whether it is asked for with --set or with the shorthand
// options, which are --set in disguise (the shorthands were applied after validation, and slipped
// past the rule), for a new run and for a command on a checkpoint, before anything is loaded.
TEST(Cli, CudaWithBf16IsRefusedByEveryRoute) {
  TempDir t("cli_bf16_cuda");
  const std::string cfg = " --config " + std::string(MONET_SOURCE_DIR) + "/configs/tiny.json";
  const std::string ckpt =
      " --ckpt " + std::string(MONET_SOURCE_DIR) + "/tests/data/v0_checkpoints/dense";
  expect_clean_error(
      monet_cli("train" + cfg + " --set run.device=cuda --set run.precision=bf16", t.path()),
      "runs on the CPU only");
  expect_clean_error(monet_cli("train" + cfg + " --device cuda --precision bf16", t.path()),
                     "--precision bf16: config key 'run.precision' = 'bf16' runs on the CPU only");
  expect_clean_error(monet_cli("eval" + ckpt + " --device cuda --precision bf16", t.path()),
                     "runs on the CPU only");
  expect_clean_error(
      monet_cli("sample" + ckpt + " --prompt a --device cuda --precision bf16", t.path()),
      "runs on the CPU only");
  EXPECT_FALSE(fs::exists(t / "runs"));
}

// Every option of every command shows its default in --help (the `monet help COMMAND` text).
TEST(Cli, HelpShowsEveryDefault) {
  TempDir t("cli_help");
  const std::string eval = monet_stdout("help eval", t.path());
  for (const char* line :
       {"--batch INT:> 0=16", "--windows INT:>= 0=0", "--device TEXT:{cpu,cuda}=cpu",
        "--data TEXT=run.data", "--gemm TEXT:{auto,openblas,onednn}=the checkpoint's run.gemm",
        "--precision TEXT:{fp32,bf16}=the checkpoint's run.precision"})
    EXPECT_NE(eval.find(line), std::string::npos) << line << " not in:\n" << eval;
  const std::string sample = monet_stdout("sample --help", t.path());
  for (const char* line :
       {"--tokens INT:> 0=200", "--temperature FLOAT:>= 0=0.8", "--top-k INT:>= 0=0"})
    EXPECT_NE(sample.find(line), std::string::npos) << line << " not in:\n" << sample;
  const std::string overview = monet_stdout("--help", t.path());
  EXPECT_NE(overview.find("Exit status: 0 done, 1 an error in the work, 2 a bad command line"),
            std::string::npos);
}

// `monet eval --json` prints the same numbers as the table, at full precision, for scripts; the
// progress goes to stderr and never into the JSON.
TEST(Cli, EvalJsonHasTheTablesNumbersAtFullPrecision) {
  TempDir t("cli_eval_json");
  const std::string ck = std::string(MONET_SOURCE_DIR) + "/tests/data/v0_checkpoints/smoe";
  const std::string data = std::string(MONET_SOURCE_DIR) + "/tests/data/v0_checkpoints/data";
  const nlohmann::json j =
      nlohmann::json::parse(monet_stdout("eval --json --ckpt " + ck + " --data " + data, t.path()));
  const std::string table = monet_stdout("eval --ckpt " + ck + " --data " + data, t.path());
  ASSERT_EQ(j.at("results").size(), 3u);
  for (const auto& r : j.at("results")) {
    const std::string row = fmt::format(
        "| {} | {:.4f} | {:.4f} | {} |", r.at("domain").get<std::string>(),
        r.at("loss").get<double>(), r.at("bpb").get<double>(), r.at("tokens").get<int64_t>());
    EXPECT_NE(table.find(row), std::string::npos) << row << " not in\n" << table;
    EXPECT_NE(r.at("loss").get<double>(), std::round(r.at("loss").get<double>() * 1e4) / 1e4);
  }
  EXPECT_EQ(j.at("results")[2].at("domain"), "all");
}

// `eval` and `sample` run in the checkpoint's GEMM mode unless --gemm / --precision say otherwise:
// every backend and precision gives the fp32 OpenBLAS loss within bf16 rounding, and greedy
// samples of the fp32 backends are the same text.
TEST(Cli, EvalAndSampleTakeGemmAndPrecision) {
  TempDir t("cli_gemm");
  const std::string ck = std::string(MONET_SOURCE_DIR) + "/tests/data/v0_checkpoints/smoe";
  const std::string data = std::string(MONET_SOURCE_DIR) + "/tests/data/v0_checkpoints/data";
  auto loss = [&](const std::string& opts) {
    const nlohmann::json j = nlohmann::json::parse(
        monet_stdout("eval --json --ckpt " + ck + " --data " + data + " " + opts, t.path()));
    return j.at("results")[2].at("loss").get<double>();
  };
  const double ref = loss("--gemm openblas --precision fp32");
  for (const std::string backend : {"openblas", "auto"}) {
    EXPECT_NEAR(loss("--gemm " + backend + " --precision fp32"), ref, 1e-5) << backend;
    const double bf = loss("--gemm " + backend + " --precision bf16");
    EXPECT_NEAR(bf, ref, 0.01) << backend;
    EXPECT_NE(bf, ref) << backend << ": bf16 changed nothing";
  }
  auto text = [&](const std::string& opts) {
    return monet_stdout("sample --ckpt " + ck + " --prompt ab --tokens 8 --temperature 0 " + opts,
                        t.path());
  };
  EXPECT_EQ(text("--gemm openblas"), text("--gemm auto"));
  const std::string help = monet_stdout("sample --help", t.path());
  EXPECT_NE(help.find("--precision TEXT:{fp32,bf16}=the checkpoint's run.precision"),
            std::string::npos)
      << help;
}

// Issue #16: a Hugging Face folder of the released layout (the committed fixture) through every
// command that reads a checkpoint, and `monet export` with its refusals.
TEST(Cli, HuggingFaceFolderRunsThroughEvalSampleExpertsMaskAndExport) {
#ifndef MONET_WITH_SENTENCEPIECE
  GTEST_SKIP()
      << "built without SentencePiece (libsentencepiece-dev): the fixture ships a tokenizer.model";
#endif
  TempDir t("cli_hf");
  const std::string vd = std::string(MONET_SOURCE_DIR) + "/tests/data/hf/monet_vd";
  const std::string data = std::string(MONET_SOURCE_DIR) + "/tests/data/v0_checkpoints/data";
  const nlohmann::json ev = nlohmann::json::parse(
      monet_stdout("eval --json --ckpt " + vd + " --data " + data + " --windows 2", t.path()));
  const nlohmann::json& all = ev.at("results").back();
  // SentencePiece tokens stand for several bytes each: bpb counts the text's bytes, not tokens.
  EXPECT_GT(all.at("bytes").get<double>(), 1.5 * all.at("tokens").get<double>()) << ev.dump();
  EXPECT_NEAR(all.at("bpb").get<double>(),
              all.at("loss").get<double>() * all.at("tokens").get<double>() / std::log(2.0) /
                  all.at("bytes").get<double>(),
              1e-9);
  // Greedy ids: bos, the prompt's pieces, then the reference's greedy tokens (tests/data/hf).
  const nlohmann::json ref = nlohmann::json::parse(
      monet::read_file(std::string(MONET_SOURCE_DIR) + "/tests/data/hf/monet_vd_reference.json"));
  const std::string out =
      monet_stdout("sample --ckpt " + vd + " --prompt \"" + ref.at("text").get<std::string>() +
                       "\" --tokens 16 --temperature 0 --ids",
                   t.path());
  std::vector<int32_t> want = ref.at("greedy_prompt_ids").get<std::vector<int32_t>>();
  for (int32_t id : ref.at("greedy").get<std::vector<int32_t>>()) want.push_back(id);
  EXPECT_EQ(out.substr(0, out.find('\n')), fmt::format("{}", fmt::join(want, " ")));
  EXPECT_EQ(monet_cli("experts --ckpt " + vd + " --data " + data + " --windows 2 --out " +
                          (t / "experts").string(),
                      t.path())
                .status,
            0);
  EXPECT_TRUE(fs::exists(t / "experts" / "experts.html"));
  EXPECT_EQ(
      monet_cli("mask --ckpt " + vd + " --data " + data +
                    " --domain code --select-windows 2 --windows 2 --out " + (t / "mask").string(),
                t.path())
          .status,
      0);
  EXPECT_TRUE(fs::exists(t / "mask" / "mask.md"));
  expect_clean_error(monet_cli("purge --ckpt " + vd + " --data " + data + " --text " + data +
                                   "/code.val.txt --score " + data + "/code.val.txt",
                               t.path()),
                     "sentencepiece tokens");

  // export: the fixture written again as bf16 loads with the same logits as the original.
  EXPECT_EQ(
      monet_stdout("export --ckpt " + vd + " --to hf --dtype bf16 --out " + (t / "out").string(),
                   t.path()),
      (t / "out").string() + "\n");
  EXPECT_TRUE(fs::exists(t / "out" / "tokenizer.model"));
  auto loss = [&](const std::string& ck) {
    return nlohmann::json::parse(monet_stdout(
        "eval --json --ckpt " + ck + " --data " + data + " --windows 2", t.path()))["results"];
  };
  EXPECT_EQ(loss((t / "out").string()), loss(vd));
  expect_clean_error(monet_cli("export --ckpt " + vd + " --out " + (t / "out").string(), t.path()),
                     "already exists");
  expect_clean_error(
      monet_cli("export --ckpt " + std::string(MONET_SOURCE_DIR) +
                    "/tests/data/v0_checkpoints/dense --out " + (t / "dense").string(),
                t.path()),
      "MONET models");
  EXPECT_EQ(
      monet_cli("export --ckpt " + vd + " --to onnx --out " + (t / "x").string(), t.path()).status,
      2);
}

// `monet finetune` then `monet instruct-eval` on the committed mixture: a tiny model pretrained
// for 2 steps, fine-tuned for 2; the outputs and the bad-input errors of both commands.
TEST(Cli, FinetuneAndInstructEvalRunOnTheMixture) {
  TempDir t("cli_ft");
  const std::string src = MONET_SOURCE_DIR;
  monet::write_file_atomic(
      t / "pre.json",
      R"({"model": {"d": 16, "layers": 1, "heads": 2, "context": 128, "ffn": {"kind": "smoe", "experts": 4}},
          "run": {"steps": 2, "batch": 2, "eval_windows": 1, "data": ")" +
          src + R"(/third_party/corpora/toy4"}})");
  const std::string pre = (t / "pre").string(), ft = (t / "ft").string();
  ASSERT_EQ(
      monet_cli("train --config " + (t / "pre.json").string() + " --out " + pre, t.path()).status,
      0);
  const std::string data = " --data " + src + "/data/toy4_instruct";
  const std::string table = monet_stdout(
      "finetune --ckpt " + pre + data + " --steps 2 --batch 2 --freeze routers --out " + ft,
      t.path());
  for (const char* row : {"| classify |", "| complete |", "| all |"})
    EXPECT_NE(table.find(row), std::string::npos) << row << " not in\n" << table;
  const monet::Config cfg = monet::load_config(t / "ft" / "checkpoint" / "config.json");
  EXPECT_EQ(cfg.finetune.freeze, "routers");
  EXPECT_EQ(cfg.finetune.init, (t / "pre" / "checkpoint").string());
  EXPECT_EQ(cfg.run.steps, 2);
  const std::string md = monet_stdout("instruct-eval --ckpt " + ft + data + " --limit 1", t.path());
  EXPECT_NE(md.find("| held-out | 4 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| held-in | 12 |"), std::string::npos) << md;
  const nlohmann::json j =
      nlohmann::json::parse(monet::read_file(t / "ft" / "instruct_eval" / "instruct_eval.json"));
  EXPECT_EQ(j.at("predictions").size(), 16u);
  EXPECT_EQ(j.at("families").size(), 16u);

  expect_clean_error(monet_cli("finetune" + data, t.path()), "give --ckpt", 2);  // a usage error
  expect_clean_error(monet_cli("finetune --ckpt " + pre + " --data " + src +
                                   "/third_party/corpora/toy4 --out " + (t / "x").string(),
                               t.path()),
                     "holds no train.jsonl");
  expect_clean_error(monet_cli("finetune --ckpt " + pre + data + " --freeze gates", t.path()),
                     "finetune.freeze");
  expect_clean_error(
      monet_cli("finetune --ckpt " + pre + data + " --families nope --out " + (t / "x").string(),
                t.path()),
      "no family 'nope'");
  expect_clean_error(monet_cli("finetune --ckpt " + pre + data + " --out " + ft, t.path()),
                     "already holds a run");
  expect_clean_error(
      monet_cli("instruct-eval --ckpt " + ft + " --data " + (t / "none").string(), t.path()),
      "no folder");
  expect_clean_error(monet_cli("instruct-eval --ckpt " + ft + data + " --split val", t.path()),
                     "--split", 2);
}

// `monet sae train` on the committed dense fixture, then the SAE spliced into `eval` (the loss
// moves; with the error term it is the plain loss exactly), `experts` and `mask` (its features are
// the experts); the bad-input errors of the new options.
TEST(Cli, SaeTrainThenEvalExpertsAndMaskWithTheSaeSpliced) {
  TempDir t("cli_sae");
  const std::string ck = std::string(MONET_SOURCE_DIR) + "/tests/data/v0_checkpoints/dense";
  const std::string data = std::string(MONET_SOURCE_DIR) + "/tests/data/v0_checkpoints/data";
  const std::string base = "sae train --ckpt " + ck + " --data " + data;
  const std::string out = (t / "sae").string();
  const std::string table = monet_stdout(
      base + " --layer 1 --features 32 --k 4 --steps 60 --batch 4 --windows 2 --out " + out,
      t.path());
  EXPECT_NE(table.find("| 1 | mlp | 32 | k=4 | 60 | 3840 |"), std::string::npos) << table;
  for (const char* f : {"sae.safetensors", "sae.json", "loss.svg"})
    EXPECT_TRUE(fs::exists(t / "sae" / f)) << f;
  const nlohmann::json j = nlohmann::json::parse(monet::read_file(t / "sae" / "sae.json"));
  EXPECT_EQ(j.at("log").size(), 60u);
  EXPECT_LE(j.at("val").at("l0").get<double>(), 4.0);
  EXPECT_GT(j.at("val").at("nmse").get<double>(), 0.0);

  const std::string sae = out + "/sae.safetensors";
  auto loss = [&](const std::string& opts) {
    return nlohmann::json::parse(
               monet_stdout("eval --json --ckpt " + ck + " --data " + data + " " + opts, t.path()))
        .at("results")
        .back()
        .at("loss")
        .get<double>();
  };
  const double plain = loss("");
  EXPECT_NE(loss("--sae " + sae), plain);
  EXPECT_EQ(loss("--sae " + sae + " --sae-error"), plain);
  const std::string experts =
      monet_stdout("experts --ckpt " + ck + " --data " + data + " --sae " + sae +
                       " --windows 2 --out " + (t / "experts").string(),
                   t.path());
  EXPECT_NE(experts.find("layer 1 mlp"), std::string::npos) << experts;
  const std::string mask = monet_stdout(
      "mask --ckpt " + ck + " --data " + data + " --sae " + sae +
          " --domain all --control --select-windows 4 --windows 2 --out " + (t / "mask").string(),
      t.path());
  EXPECT_NE(mask.find("dense + 1 SAE"), std::string::npos) << mask;
  EXPECT_NE(mask.find("of 32"), std::string::npos) << mask;

  // Bad input: one line, exit 1 (the work) or 2 (the command line).
  expect_clean_error(monet_cli(base + " --layer 1 --features 32 --steps 60 --out " + out, t.path()),
                     "exactly one of --k");
  EXPECT_EQ(monet_cli(base + " --layer 1 --features 32 --k 4 --l1 0.1", t.path()).status, 2);
  EXPECT_EQ(monet_cli(base + " --layer 1 --features 32 --k 4 --site attn", t.path()).status, 2);
  EXPECT_EQ(monet_cli(base + " --layer 1 --features 0 --k 4", t.path()).status, 2);
  expect_clean_error(
      monet_cli(base + " --layer 7 --features 32 --k 4 --steps 60 --out " + out, t.path()),
      "--layer 7 is outside the model's 2 layers");
  expect_clean_error(
      monet_cli(base + " --layer 1 --features 32 --k 40 --steps 60 --out " + out, t.path()),
      "--k must be in [1, features = 32]");
  expect_clean_error(
      monet_cli("eval --ckpt " + ck + " --data " + data + " --sae " + data + "/code.val.txt",
                t.path()),
      "code.val.txt");
  expect_clean_error(
      monet_cli("eval --ckpt " + ck + " --data " + data + " --sae " + sae + " --sae " + sae,
                t.path()),
      "second SAE on layer 1 mlp");
  expect_clean_error(monet_cli("experts --ckpt " + ck + " --data " + data, t.path()),
                     "or a sparse autoencoder spliced in (--sae)");
}
