// `monet purge`: remove the experts whose scores correlate with a per-token score; the loss change
// on the text and on every domain (eval/purge.h).
#include <fmt/format.h>

#include <chrono>

#include "app/checkpoint_command.h"
#include "app/command.h"
#include "eval/purge.h"
#include "train/tokenizer.h"
#include "util/fileio.h"
#include "util/timing.h"

namespace monet::app {

namespace fs = std::filesystem;

Command add_purge_command(CLI::App& app) {
  struct Args : CheckpointArgs {
    std::string text, score;
    bool no_split = false;
    interp::PurgeOptions po;
  };
  auto a = std::make_shared<Args>();
  interp::PurgeOptions& po = a->po;
  CLI::App* cmd = app.add_subcommand(
      "purge", "remove the experts correlated with a per-token score; loss change");
  add_checkpoint_options(cmd, *a, "<run>/purge");
  cmd->add_option("--text", a->text, "the text the score belongs to")->required();
  cmd->add_option("--score", a->score, "one number per byte of --text, whitespace-separated")
      ->required();
  cmd->add_option("--threshold", po.thresholds, "remove experts with Pearson r >= R (repeatable)")
      ->capture_default_str();
  cmd->add_option("--text-windows", po.text_windows, "windows of the text, evenly spread (0: all)")
      ->check(at_least(0))
      ->capture_default_str();
  cmd->add_flag("--no-split", a->no_split,
                "choose the experts and measure the text's loss on the same (whole) text");
  cmd->add_option("--control-draws", po.control_draws,
                  "matched random sets per threshold (0: no control)")
      ->check(at_least(0))
      ->capture_default_str();
  cmd->add_option("--seed", po.seed, "seed of the random control")->capture_default_str();
  cmd->add_option("--windows", po.eval_windows, "val windows per domain for the losses (0: all)")
      ->check(at_least(0))
      ->capture_default_str();
  return {cmd, [a] {
            const auto t0 = std::chrono::steady_clock::now();
            LoadedRun l = load_run(*a);
            MONET_CHECK(l.tokenizer->name() == "byte",
                        "purge: --score gives one number per byte, and checkpoint '{}' reads "
                        "{} tokens; per-byte scores are not mapped onto them yet",
                        a->ckpt, l.tokenizer->name());
            const std::vector<int32_t> text = l.tokenizer->encode(read_file(a->text));
            const std::vector<double> score = interp::read_token_scores(a->score);
            interp::PurgeOptions o = a->po;
            o.batch = a->batch;
            o.split = !a->no_split;
            interp::PurgeResult r =
                run_purge(*l.experts, l.corpus.domains(), text, score,
                          fs::path(a->text).filename().string(), o, [&](const std::string& what) {
                            fmt::print(stderr, "purge: {} ({:.0f} s)\n", what, seconds_since(t0));
                          });
            const fs::path out = l.out_dir(*a, "purge");
            write_purge_outputs(r, out);
            fmt::print("{}", purge_markdown(r));
            fmt::print(stderr, "purge: wrote {}/purge.{{md,json}} in {:.1f} s\n", out.string(),
                       seconds_since(t0));
            return 0;
          }};
}

}  // namespace monet::app
