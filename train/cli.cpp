// The `monet` command-line program. Subcommands are added by the training and evaluation issues;
// for now: --version, --help, and `demo` (the core's smoke test as a user sees it).
#include <cblas.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>

#include "core/error.h"
#include "train/demo.h"

int main(int argc, char** argv) {
  CLI::App app{"monet: Mixture-of-Experts layers (dense, SMoE, PEER, MONET-HD/VD), trained and measured"};
  app.set_version_flag("--version", std::string("monet ") + MONET_VERSION);
  app.require_subcommand(0, 1);

  int demo_steps = 300;
  uint64_t demo_seed = 0;
  CLI::App* demo = app.add_subcommand("demo", "train a tiny MLP on a synthetic task with the core and print its loss");
  demo->add_option("--steps", demo_steps, "SGD steps")->check(CLI::PositiveNumber);
  demo->add_option("--seed", demo_seed, "random seed");

  CLI11_PARSE(app, argc, argv);
  try {
    fmt::print("monet {} | OpenBLAS core: {}, {} threads\n", MONET_VERSION, openblas_get_corename(),
               openblas_get_num_threads());
    if (app.got_subcommand(demo)) {
      auto r = monet::run_xor_demo(demo_steps, demo_seed, [&](int step, double loss) {
        if (step % 25 == 0 || step == demo_steps - 1) fmt::print("step {:4d}  loss {:.4f}\n", step, loss);
      });
      fmt::print("demo: loss {:.4f} -> {:.4f}, accuracy {:.1f}%\n", r.first_loss, r.final_loss,
                 100 * r.accuracy);
      return 0;
    }
    fmt::print("{}", app.help());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "monet: error: %s\n", e.what());
    return 1;
  }
}
