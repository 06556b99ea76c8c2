// The commands of the `monet` program. Each lives in one file of app/ that declares its options on
// the CLI11 parser and turns them into a call into train/ or eval/; main.cpp lists them.
//
// Conventions every command follows: results on stdout, progress and notes on stderr, and every
// error as one line "monet: error: ..." on stderr. Exit status: 0 done, 1 an error in the work
// (a missing file, a bad config value, a damaged checkpoint), 2 a bad command line (an unknown
// command or option, a missing or out-of-range value), 130 interrupted by Ctrl-C after saving.
#pragma once
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

#include "core/comm.h"
#include "train/config.h"

namespace monet::app {

struct Command {
  CLI::App* cli = nullptr;   // the subcommand, for CLI11
  std::function<int()> run;  // what it does once parsed; returns the exit status
  // Its traits, which main.cpp asks instead of testing names: whether it may run on several
  // processes under mpirun (train, finetune), and whether it opens with the build's banner line
  // (GEMM backend, BLAS, threads) on stderr; help and kinds only print text.
  bool multi_process = false;
  bool banner = true;
};

inline constexpr int kExitError = 1, kExitUsage = 2, kExitInterrupted = 130;

// A command line that parsed but does not say what to do (train with neither --config nor
// --resume): exit status 2 and one line, as CLI11's own errors.
struct UsageError : Error {
  using Error::Error;
};

// Range checks that say the range in words ("must be >= 0, got -1"); CLI11's own print the
// largest double as the upper end.
inline CLI::Validator at_least(double lo) {
  return CLI::Validator(
      [lo](std::string& s) -> std::string {
        double v = 0;
        if (!CLI::detail::lexical_cast(s, v)) return fmt::format("must be a number, got '{}'", s);
        return v >= lo ? "" : fmt::format("must be >= {}, got {}", lo, s);
      },
      fmt::format(">= {}", lo));
}
inline CLI::Validator positive() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        double v = 0;
        if (!CLI::detail::lexical_cast(s, v)) return fmt::format("must be a number, got '{}'", s);
        return v > 0 ? "" : fmt::format("must be positive, got {}", s);
      },
      "> 0");
}

// A line of progress or context on stderr ("monet: ..."), for library calls that take a note.
inline void note_to_stderr(const std::string& line) {
  fmt::print(stderr, "monet: {}\n", line);
}

// --sae FILE... and --sae-error: sparse autoencoders (`monet sae train`) spliced into the loaded
// model, each replacing its site's activation with its reconstruction (sae/sae_io.h).
struct SaeSpliceArgs {
  std::vector<std::string> files;
  bool error_term = false;
};
inline void add_sae_options(CLI::App* cmd, SaeSpliceArgs& s) {
  cmd->add_option("--sae", s.files,
                  "sparse autoencoder files to splice in: each site's activation becomes its "
                  "reconstruction")
      ->check(CLI::ExistingFile);
  cmd->add_flag("--sae-error", s.error_term,
                "add each SAE's error term back (x̂ + (x − x̂)): only removed features change "
                "the model");
}

// --device: the CPU unless given, for the commands that load a checkpoint (`device` is set to
// its name); run.device's value for train and finetune (defaults_from = "run.device", `device`
// left empty until given).
inline void add_device_option(CLI::App* cmd, std::string& device,
                              const std::string& defaults_from = "") {
  if (defaults_from.empty()) device = device_types().name(DeviceType::CPU);
  cmd->add_option("--device", device, "the device the model runs on")
      ->check(CLI::IsMember(device_types().names()))
      ->default_str(defaults_from.empty() ? device : defaults_from);
}

// --gemm and --precision: the CPU's products (core/gemm_mode.h); empty when not given. The
// choices are those of run.gemm and run.precision (train/config.h).
struct GemmArgs {
  std::string gemm, precision;
};
// "auto" (oneDNN where built) and the backends' names (core/settings.h).
std::vector<std::string> gemm_choices();
inline void add_gemm_options(CLI::App* cmd, GemmArgs& g, const std::string& defaults_from) {
  cmd->add_option("--gemm", g.gemm, "the CPU's GEMM library (auto: oneDNN where built)")
      ->check(CLI::IsMember(gemm_choices()))
      ->default_str(defaults_from.empty() ? "auto" : defaults_from + ".gemm");
  cmd->add_option("--precision", g.precision, "the products' inputs (bf16: f32 accumulation)")
      ->check(CLI::IsMember(precisions().names()))
      ->default_str(defaults_from.empty() ? precisions().name(Precision::F32)
                                          : defaults_from + ".precision");
}

// --device, --gemm and --precision are `--set run.device=...`, `--set run.gemm=...` and
// `--set run.precision=...` in disguise: these are the overrides of the ones given, applied after
// the explicit --set ones, so that every route to those keys goes through the one validate() of
// train/config.h (bf16 with cuda is refused whichever way it is asked for).
std::vector<std::string> shorthand_sets(const std::string& device, const GemmArgs& g);
// An error of parsing with those overrides, naming the option the user typed ("--precision bf16")
// where it named the override ("--set 'run.precision=bf16'").
Error naming_shorthands(const Error& e, const std::string& device, const GemmArgs& g);
// A config with the shorthands applied and validated again: its run says the device and the GEMM
// mode of the command. Errors name the option ("--precision bf16: ...").
Config with_shorthands(const Config& cfg, const std::string& device, const GemmArgs& g);
// The run settings of a command on a checkpoint: its config (train/checkpoint.h) with the
// command's --device, --gemm and --precision, checked before anything is loaded.
RunConfig checkpoint_run(const std::string& ckpt, const std::string& device, const GemmArgs& g);

// train and finetune run on the job's processes: `comm` (several ranks under mpirun).
Command add_train_command(CLI::App& app, Communicator& comm);
Command add_finetune_command(CLI::App& app, Communicator& comm);
Command add_instruct_eval_command(CLI::App& app);
Command add_eval_command(CLI::App& app);
Command add_sample_command(CLI::App& app);
Command add_table_command(CLI::App& app);
Command add_experts_command(CLI::App& app);
Command add_mask_command(CLI::App& app);
Command add_purge_command(CLI::App& app);
Command add_export_command(CLI::App& app);
Command add_bench_command(CLI::App& app);
Command add_demo_command(CLI::App& app);
Command add_kinds_command(CLI::App& app);
Command add_sae_command(CLI::App& app);

}  // namespace monet::app
