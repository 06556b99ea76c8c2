// `monet bench`: the training step of `monet train`, timed; --vs-torch against the PyTorch twin
// (eval/bench.h).
#include <fmt/format.h>

#include <filesystem>

#include "app/command.h"
#include "eval/bench.h"
#include "util/fileio.h"

namespace monet::app {

Command add_bench_command(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  auto out = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand(
      "bench",
      "time the training step (tokens/s, GFLOP/s, memory); --vs-torch against the PyTorch twin");
  cmd->add_option("--config", o->configs,
                  "run configuration(s) (configs/bench_*.json), one row each")
      ->required();
  cmd->add_option("--set", o->sets,
                  "override a key of every config: --set model.d=256 (repeatable)");
  cmd->add_option("--precision", o->precisions,
                  "one row per precision of each config: fp32, bf16 or fp32,bf16")
      ->delimiter(',')
      ->check(CLI::IsMember(precisions().names()))
      ->default_str("run.precision");
  cmd->add_option("--gemm", o->gemm, "the CPU's GEMM library (auto: oneDNN where built)")
      ->check(CLI::IsMember(gemm_choices()))
      ->default_str("run.gemm");
  cmd->add_option("--steps", o->steps, "timed steps per round")
      ->check(positive())
      ->capture_default_str();
  cmd->add_option("--warmup", o->warmup, "untimed steps first, each round")
      ->check(at_least(0))
      ->capture_default_str();
  cmd->add_option("--rounds", o->rounds, "rounds per side (C++ and PyTorch alternate)")
      ->check(positive())
      ->capture_default_str();
  cmd->add_flag("--vs-torch", o->vs_torch, "also run the PyTorch twin and print the ratio");
  cmd->add_option("--python", o->python, "the interpreter with torch")->capture_default_str();
  cmd->add_option("--torch-script", o->torch_script, "the PyTorch twin")->capture_default_str();
  cmd->add_option("--out", *out, "also write bench.md and bench.json (every number) here");
  return {cmd, [o, out] {
            const BenchResult r = run_bench(*o, stderr);
            fmt::print("{}", bench_markdown(r));
            if (!out->empty()) {
              std::filesystem::create_directories(*out);
              write_file_atomic(std::filesystem::path(*out) / "bench.md", bench_markdown(r));
              write_file_atomic(std::filesystem::path(*out) / "bench.json",
                                bench_json(r).dump(1) + "\n");
            }
            return 0;
          }};
}

}  // namespace monet::app
