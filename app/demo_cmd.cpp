// `monet demo`: the core's smoke test, an MLP learning XOR-of-signs with SGD.
#include <fmt/format.h>

#include "app/command.h"
#include "train/demo.h"

namespace monet::app {

Command add_demo_command(CLI::App& app) {
  struct Args {
    int steps = 300;
    uint64_t seed = 0;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "demo", "train a tiny MLP on a synthetic task with the core and print its loss");
  cmd->add_option("--steps", a->steps, "SGD steps")->check(positive())->capture_default_str();
  cmd->add_option("--seed", a->seed, "random seed")->capture_default_str();
  return {cmd, [a] {
            const int steps = a->steps;
            auto r = run_xor_demo(steps, a->seed, [&](int step, double loss) {
              if (step % 25 == 0 || step == steps - 1)
                fmt::print("step {:4d}  loss {:.4f}\n", step, loss);
            });
            fmt::print("demo: loss {:.4f} -> {:.4f}, accuracy {:.1f}%\n", r.first_loss,
                       r.final_loss, 100 * r.accuracy);
            return 0;
          }};
}

}  // namespace monet::app
