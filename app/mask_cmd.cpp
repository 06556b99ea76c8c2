// `monet mask`: remove the experts specialised to a domain; val loss per domain before and after
// (eval/mask.h).
#include <fmt/format.h>

#include <chrono>

#include "app/checkpoint_command.h"
#include "app/command.h"
#include "eval/mask.h"
#include "util/timing.h"

namespace monet::app {

Command add_mask_command(CLI::App& app) {
  struct Args : CheckpointArgs {
    std::string domain, rule = "ratio:2";
    interp::MaskOptions mo;
  };
  auto a = std::make_shared<Args>();
  interp::MaskOptions& mo = a->mo;
  CLI::App* cmd = app.add_subcommand(
      "mask", "remove the experts specialised to a domain; val loss per domain before and after");
  add_checkpoint_options(cmd, *a, "<run>/mask_<domain>");
  cmd->add_option("--domain", a->domain, "the domain whose experts are removed, or all")
      ->required();
  cmd->add_option("--rule", a->rule, "selection rule: ratio:R (p(domain) >= R x p(second domain))")
      ->capture_default_str();
  cmd->add_option("--select-windows", mo.select_windows,
                  "train windows per domain for the routing probabilities")
      ->check(positive())
      ->capture_default_str();
  cmd->add_option("--windows", mo.eval_windows, "val windows per domain for the losses (0: all)")
      ->check(at_least(0))
      ->capture_default_str();
  cmd->add_flag("--control", mo.control,
                "also remove random sets matched to each selection's size and routing mass");
  cmd->add_option("--control-draws", mo.control_draws, "random sets per masked domain")
      ->check(positive())
      ->capture_default_str();
  cmd->add_option("--seed", mo.seed, "seed of the random control")->capture_default_str();
  return {cmd, [a] {
            const auto t0 = std::chrono::steady_clock::now();
            LoadedRun l = load_run(*a);
            interp::MaskOptions o = a->mo;
            o.domain = a->domain;
            o.rule = interp::parse_rule(a->rule);
            o.batch = a->batch;
            o.tokenizer = l.tokenizer.get();
            interp::MaskResult r =
                run_mask(*l.experts, l.corpus.domains(), o, [&](const std::string& what) {
                  fmt::print(stderr, "mask: {} ({:.0f} s)\n", what, seconds_since(t0));
                });
            const auto out = l.out_dir(*a, "mask_" + a->domain);
            write_mask_outputs(r, out);
            fmt::print("{}", mask_markdown(r));
            fmt::print(stderr, "mask: wrote {}/mask.{{md,json,svg}} in {:.1f} s\n", out.string(),
                       seconds_since(t0));
            return 0;
          }};
}

}  // namespace monet::app
