// The `monet` program: train, evaluate and sample models, measure the layers, read their experts.
//   monet train --config FILE.json [--out DIR] [--set key=value ...] | --resume DIR
//   monet eval --ckpt DIR [--data FOLDER]
//   monet sample --ckpt DIR --prompt TEXT [--tokens N --temperature T --top-k K --seed S]
//   monet table [--out DIR] [--quick] [--kinds dense,smoe,...]   (the complexity table)
//   monet experts | mask | purge --ckpt DIR ...                  (interpretability)
//   monet bench --config FILE [...] [--vs-torch]                 (the training step measured)
//   monet demo                                                   (the core's smoke test)
//   monet kinds [KIND]                                           (the feed-forward kinds' keys)
// `monet COMMAND --help` lists each command's options with their defaults.
#include <cblas.h>
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <exception>
#include <vector>

#include "app/command.h"

using namespace monet;

int main(int argc, char** argv) {
  CLI::App app{
      "monet: Mixture-of-Experts layers (dense, SMoE, PEER, MONET-HD/VD), trained and measured"};
  app.set_version_flag("--version", std::string("monet ") + MONET_VERSION);
  app.require_subcommand(0, 1);
  const std::vector<app::Command> commands = {
      app::add_train_command(app), app::add_eval_command(app),    app::add_sample_command(app),
      app::add_table_command(app), app::add_experts_command(app), app::add_mask_command(app),
      app::add_purge_command(app), app::add_bench_command(app),   app::add_demo_command(app),
      app::add_kinds_command(app),
  };
  CLI11_PARSE(app, argc, argv);
  try {
    for (const app::Command& c : commands) {
      if (!c.cli->parsed()) continue;
      fmt::print(stderr, "monet {} | OpenBLAS {} ({} threads)\n", MONET_VERSION,
                 openblas_get_corename(), openblas_get_num_threads());
      return c.run();
    }
    fmt::print("{}", app.help());
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "monet: error: {}\n", e.what());
    return 1;
  }
}
