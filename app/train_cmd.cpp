// `monet train`: a run from a config (or resumed from its folder), evaluated at the end.
#include <fmt/format.h>

#include <filesystem>

#include "app/command.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

namespace monet::app {

namespace fs = std::filesystem;

Command add_train_command(CLI::App& app) {
  struct Args {
    std::string config, out, resume, device;
    GemmArgs gemm;
    std::vector<std::string> sets;
    int64_t stop_at = -1;
    bool force = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("train", "train a model from a JSON config on a text corpus");
  cmd->add_option("--config", a->config, "the run configuration (configs/*.json)");
  cmd->add_option("--out", a->out, "output folder")->default_str("runs/<config name>");
  cmd->add_option("--set", a->sets, "override a config key: --set run.steps=100 (repeatable)");
  cmd->add_option("--resume", a->resume, "continue the run in this folder from its checkpoint");
  cmd->add_option("--stop-at", a->stop_at, "stop with a checkpoint after this many steps")
      ->check(at_least(0))
      ->default_str("run.steps");
  cmd->add_option("--device", a->device, "cpu or cuda")->default_str("run.device");
  add_gemm_options(cmd, a->gemm, "run");
  cmd->add_flag("--force", a->force, "start over in a folder that already holds a run");
  return {cmd, [a] {
            TrainOptions opt;
            if (!a->resume.empty()) {
              opt.resume = true;
              opt.out_dir = a->resume;
              opt.config = resume_config(a->resume, a->sets);
            } else {
              MONET_CHECK(!a->config.empty(), "train: give --config FILE.json (or --resume DIR)");
              opt.config = load_config(a->config, a->sets);
              opt.out_dir =
                  a->out.empty() ? fs::path("runs") / fs::path(a->config).stem() : fs::path(a->out);
            }
            if (!a->device.empty()) opt.config.run.device = a->device;
            apply_gemm_args(a->gemm, opt.config.run);
            opt.stop_at = a->stop_at;
            opt.force = a->force;
            const TrainResult r = train(opt);
            if (!r.eval.empty()) fmt::print("{}", eval_markdown(r.eval));
            return r.interrupted ? kExitInterrupted : 0;
          }};
}

}  // namespace monet::app
