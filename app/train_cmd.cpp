// `monet train`: a run from a config (or resumed from its folder), evaluated at the end.
#include <fmt/format.h>

#include <filesystem>

#include "app/run_command.h"

namespace monet::app {

namespace fs = std::filesystem;

Command add_train_command(CLI::App& app, Communicator& comm) {
  struct Args : RunArgs {
    std::string config, out;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "train",
      "train a model from a JSON config on a text corpus (under `mpirun -np R`: on R processes, "
      "data parallel; run.expert_parallel shards SMoE experts)");
  cmd->add_option("--config", a->config, "the run configuration (configs/*.json)");
  cmd->add_option("--out", a->out, "output folder")->default_str("runs/<config name>");
  add_run_options(cmd, *a, "run.steps");
  // A resumed run keeps its own config (change it with --set): a --config beside it would be
  // ignored, so it is refused.
  cmd->get_option("--config")->excludes("--resume");
  return {cmd,
          [a, &comm] {
            return run_training(*a, comm, [&](const std::vector<std::string>& sets) {
              if (a->config.empty()) throw UsageError("give --config FILE.json (or --resume DIR)");
              TrainOptions opt;
              opt.config = load_config(a->config, sets);
              opt.out_dir =
                  a->out.empty() ? fs::path("runs") / fs::path(a->config).stem() : fs::path(a->out);
              return opt;
            });
          },
          /*multi_process=*/true};  // under mpirun: data parallel
}

}  // namespace monet::app
