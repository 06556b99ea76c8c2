// `monet experts`: per-expert top contexts and per-domain routing, as experts.html and
// experts.json (eval/experts.h).
#include <fmt/format.h>

#include <chrono>

#include "app/checkpoint_command.h"
#include "app/command.h"
#include "util/progress.h"
#include "util/timing.h"

namespace monet::app {

namespace fs = std::filesystem;

Command add_experts_command(CLI::App& app) {
  struct Args : CheckpointArgs {
    interp::CollectOptions co;
    int64_t window = 40;  // bytes of context either side
    int64_t max_experts = 4096;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "experts", "per-expert top contexts and per-domain routing: experts.html + experts.json");
  add_checkpoint_options(cmd, *a, "<run>/experts");
  cmd->add_option("--layer", a->co.layer, "only the routing site of this layer (-1: all)")
      ->check(at_least(-1))
      ->capture_default_str();
  cmd->add_option("--top", a->co.top_k, "top contexts kept per expert")
      ->check(at_least(0))
      ->capture_default_str();
  cmd->add_option("--windows", a->co.windows, "windows per domain, evenly spread (0: all)")
      ->check(at_least(0))
      ->capture_default_str();
  cmd->add_option(
         "--context-bytes", a->window,
         "bytes shown either side of a token (a quarter as many tokens for a SentencePiece model)")
      ->check(at_least(0))
      ->capture_default_str();
  cmd->add_option("--report-experts", a->max_experts,
                  "experts listed per site in the report, the most routed-to (0: every used one)")
      ->check(at_least(0))
      ->capture_default_str();
  cmd->add_flag("--train-split", a->co.train_split, "stream the train split instead of val");
  return {cmd, [a] {
            const auto t0 = std::chrono::steady_clock::now();
            LoadedRun l = load_run(*a);
            interp::CollectOptions co = a->co;
            co.batch = a->batch;
            Progress bar(1, 0, stderr);  // live on a terminal; a line every few seconds in a log
            interp::ExpertStats st =
                collect_expert_stats(*l.experts, l.corpus.domains(), co,
                                     [&](int done, int total) { bar.bar(done, total, "batches"); });
            const fs::path out = l.out_dir(*a, "experts");
            interp::ReportOptions ro;
            ro.window = a->window;
            ro.train_split = co.train_split;
            ro.max_experts = a->max_experts;
            ro.tokenizer = l.tokenizer->name() == "byte" ? nullptr : l.tokenizer.get();
            ro.title =
                fmt::format("Experts of {} ({})", l.run_dir.filename().string(), l.experts->kind());
            ro.source = fmt::format("checkpoint {} | data {}", fs::absolute(a->ckpt).string(),
                                    l.corpus.folder().string());
            write_expert_report(st, l.corpus.domains(), out, ro);
            fmt::print("{}", expert_summary(st));
            fmt::print(stderr, "experts: wrote {} and {} in {:.1f} s\n",
                       (out / "experts.html").string(), (out / "experts.json").string(),
                       seconds_since(t0));
            return 0;
          }};
}

}  // namespace monet::app
