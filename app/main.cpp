// The `monet` program: train, evaluate and sample models, measure the layers, read their experts.
//   monet train --config FILE.json [--out DIR] [--set key=value ...] | --resume DIR
//   mpirun -np R monet train ...                                  (data parallel over R ranks)
//   monet finetune --ckpt DIR [--data FOLDER] [--freeze ...] | --resume DIR  (instruction tuning)
//   monet instruct-eval --ckpt DIR [--data FOLDER]                (exact match per task family)
//   monet eval --ckpt DIR [--data FOLDER]
//   monet sample --ckpt DIR --prompt TEXT [--tokens N --temperature T --top-k K --seed S]
//   monet table [--out DIR] [--quick] [--kinds dense,smoe,...]   (the complexity table)
//   monet experts | mask | purge --ckpt DIR ...                  (interpretability)
//   monet bench --config FILE [...] [--vs-torch]                 (the training step measured)
//   monet demo                                                   (the core's smoke test)
//   monet kinds [KIND]                                           (the feed-forward kinds' keys)
//   monet help [COMMAND]                                         (the options, with defaults)
// `monet COMMAND --help` lists each command's options with their defaults.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <exception>
#include <ranges>
#include <vector>

#include "app/command.h"
#include "app/run_command.h"
#include "core/gemm_mode.h"
#include "core/machine.h"
#include "util/suggest.h"

using namespace monet;

namespace {

// The help text of `cmd` itself (App::help() of a parent whose subcommand was parsed — `help` —
// prints that subcommand's instead).
std::string help_of(const CLI::App& cmd) {
  return cmd.get_formatter()->make_help(&cmd, cmd.get_name(), CLI::AppFormatMode::Normal);
}

std::vector<std::string> subcommand_names(const CLI::App& cmd) {
  std::vector<std::string> names;
  for (const CLI::App* sub : cmd.get_subcommands({})) names.push_back(sub->get_name());
  return names;
}

// `monet help [COMMAND [SUBCOMMAND]]`: the overview, or one command's options with their defaults
// (`monet help sae train` as `monet sae train --help`).
app::Command add_help_command(CLI::App& app) {
  auto topic = std::make_shared<std::vector<std::string>>();
  CLI::App* cmd = app.add_subcommand("help", "show the commands, or one command's options");
  cmd->add_option("command", *topic, "the command (and subcommand: help sae train)");
  return {cmd,
          [&app, topic] {
            const CLI::App* at = &app;
            std::string path;
            for (const std::string& word : *topic) {
              const std::vector<std::string> names = subcommand_names(*at);
              if (std::find(names.begin(), names.end(), word) == names.end()) {
                fmt::print(stderr, "monet: error: help: no command '{}{}'{}; the {} are {}\n", path,
                           word, did_you_mean(word, names),
                           path.empty() ? "commands" : path + "subcommands",
                           fmt::join(names, ", "));
                return app::kExitUsage;
              }
              at = at->get_subcommand(word);
              path += word + " ";
            }
            fmt::print("{}", help_of(*at));
            return 0;
          },
          /*multi_process=*/false, /*banner=*/false};  // text only
}

// The deepest subcommand the command line reached ("sae train"), or null.
const CLI::App* parsed_command(const CLI::App& app, std::string& path) {
  const CLI::App* found = nullptr;
  for (const CLI::App* at = &app;;) {
    const CLI::App* next = nullptr;
    for (const CLI::App* sub : at->get_subcommands({}))
      if (sub->parsed()) next = sub;
    if (next == nullptr) return found;
    path += (path.empty() ? "" : " ") + next->get_name();
    found = at = next;
  }
}

// " (did you mean '--config'?)" for an option of `cmd` that CLI11 did not expect ("The following
// arguments were not expected: --confg").
std::string option_hint(const CLI::App& cmd, const std::string& msg) {
  if (msg.find("not expected") == std::string::npos) return "";
  std::vector<std::string> known;
  for (const CLI::Option* o : cmd.get_options())
    for (const std::string& n : o->get_lnames()) known.push_back("--" + n);
  for (size_t at = msg.find("--"); at != std::string::npos; at = msg.find("--", at + 2)) {
    const size_t end = msg.find_first_of(" ,=\n", at);
    const std::string word = msg.substr(at, end - at);
    if (std::find(known.begin(), known.end(), word) != known.end()) continue;
    const std::string hint = did_you_mean(word, known);
    if (!hint.empty()) return hint;
  }
  return "";
}

// A command-line error as one line: the command it concerns, the nearest command or option name
// for an unknown one, and where the options are listed.
int usage_error(const CLI::App& app, const std::string& what, int argc, char** argv) {
  std::string path;
  const CLI::App* cmd = parsed_command(app, path);
  const std::string first = argc > 1 ? argv[1] : "";
  if (cmd == nullptr && !first.empty() && first[0] != '-') {  // an unknown command
    const std::vector<std::string> names = subcommand_names(app);
    fmt::print(stderr, "monet: error: no command '{}'{}; the commands are {}\n", first,
               did_you_mean(first, names), fmt::join(names, ", "));
    return app::kExitUsage;
  }
  std::string msg = what;
  std::replace(msg.begin(), msg.end(), '\n', ' ');
  while (!msg.empty() && msg.back() == ' ') msg.pop_back();
  const std::string hint = cmd ? option_hint(*cmd, msg) : option_hint(app, msg);
  fmt::print(stderr, "monet: error: {}{}{} ({})\n", cmd ? path + ": " : "", msg, hint,
             cmd ? "monet help " + path : "monet help lists the commands");
  return app::kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "monet: Mixture-of-Experts layers (dense, SMoE, PEER, MONET-HD/VD), trained and measured"};
  app.set_version_flag("--version", std::string("monet ") + MONET_VERSION);
  app.require_subcommand(0, 1);
  app.footer(
      "Exit status: 0 done, 1 an error in the work, 2 a bad command line, 130 interrupted "
      "(after saving).\n`monet help COMMAND` (or `monet COMMAND --help`) lists a command's options "
      "with their defaults.");
  // The job's processes: several ranks under mpirun (train and finetune only), else this one.
  std::unique_ptr<Communicator> comm;
  try {
    comm = app::job_communicator();
  } catch (const std::exception& e) {
    fmt::print(stderr, "monet: error: {}\n", e.what());
    return app::kExitError;
  }
  const std::vector<app::Command> commands = {
      app::add_train_command(app, *comm),
      app::add_finetune_command(app, *comm),
      app::add_instruct_eval_command(app),
      app::add_eval_command(app),
      app::add_sample_command(app),
      app::add_table_command(app),
      app::add_experts_command(app),
      app::add_mask_command(app),
      app::add_purge_command(app),
      app::add_export_command(app),
      app::add_bench_command(app),
      app::add_demo_command(app),
      app::add_kinds_command(app),
      app::add_sae_command(app),
      add_help_command(app),
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return usage_error(app, e.what(), argc, argv);
  }
  try {
    for (const app::Command& c : commands) {
      if (!c.cli->parsed()) continue;
      MONET_CHECK(comm->size() == 1 || c.multi_process,
                  "{}: runs in one process; under mpirun ({} ranks) only train and finetune do",
                  c.cli->get_name(), comm->size());
      if (c.banner && comm->rank() == 0)
        fmt::print(
            stderr, "monet {} | GEMM {} by default (built: {}) | OpenBLAS {} ({} thread{})\n",
            MONET_VERSION, gemm_backend_name(default_gemm_backend()),
            fmt::join(built_gemm_backends() | std::views::transform(gemm_backend_name), ", "),
            blas_core_name(), cpu_threads(), cpu_threads() == 1 ? "" : "s");
      return c.run();
    }
    fmt::print("{}", help_of(app));
    return 0;
  } catch (const app::UsageError& e) {  // a command line that parsed but cannot run
    if (comm->rank() == 0) return usage_error(app, e.what(), argc, argv);
    return app::kExitUsage;
  } catch (const std::exception& e) {
    if (comm->size() == 1) {
      fmt::print(stderr, "monet: error: {}\n", e.what());
      return app::kExitError;
    }
    // The other ranks may be waiting in a collective for this one: end the whole job.
    fmt::print(stderr, "monet: error (rank {} of {}): {}\n", comm->rank(), comm->size(), e.what());
    std::fflush(stderr);
    comm->abort(app::kExitError);
  }
}
