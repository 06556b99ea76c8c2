// `monet table`: params, time, FLOPs and memory of one layer of every kind as N grows
// (eval/table.h).
#include <fmt/format.h>

#include "app/command.h"
#include "eval/table.h"
#include "monet/registry.h"
#include "train/model.h"
#include "util/progress.h"

namespace monet::app {

Command add_table_command(CLI::App& app) {
  struct Args {
    TableOptions opt;
    std::string out, device;
    std::vector<std::string> kinds = moe::ffn_kind_names();
    bool quick = false;
  };
  auto a = std::make_shared<Args>();
  TableOptions& o = a->opt;
  CLI::App* cmd = app.add_subcommand(
      "table", "measure params, time, FLOPs and memory of every layer kind as N grows");
  cmd->add_option("--out", a->out, "write table.md/.csv/.json and the log-log plots here");
  cmd->add_flag("--quick", a->quick, "the small sweep (√N 16..64, 256 tokens, 2 repeats) for CI");
  cmd->add_option("--d", o.d, "model width")->check(positive())->capture_default_str();
  cmd->add_option("--sqrt-n", o.sqrt_n, "the √N values to sweep (N = √N²)")
      ->delimiter(',')
      ->capture_default_str();
  std::vector<std::string> many;
  for (const moe::FfnKind* k : moe::ffn_kinds())
    if (k->many_experts) many.push_back(k->name);
  cmd->add_option("--many-sqrt-n", o.many_sqrt_n,
                  fmt::format("further √N values for the kinds built for very many experts ({})",
                              fmt::join(many, ", ")))
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--kinds", a->kinds,
                  fmt::format("layer kinds: {}", fmt::join(moe::ffn_kind_names(), ",")))
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--batch", o.batch, "B")->check(positive())->capture_default_str();
  cmd->add_option("--context", o.context, "T")->check(positive())->capture_default_str();
  cmd->add_option("--repeats", o.repeats, "timed repeats (the median is reported)")
      ->check(positive())
      ->capture_default_str();
  cmd->add_option("--warmup", o.warmup, "untimed steps first")
      ->check(at_least(0))
      ->capture_default_str();
  cmd->add_option("--max-memory-gib", o.max_memory_gib, "skip configurations predicted above this")
      ->default_str("60% of available");
  cmd->add_option("--seed", o.seed, "seed of the layers' weights and inputs")
      ->capture_default_str();
  cmd->add_option("--set", o.sets, "a layer setting: --set smoe.dim=32 (repeatable)");
  add_device_option(cmd, a->device);
  return {cmd, [a] {
            // Explicit flags win over the --quick defaults: copy those that differ from a
            // default run.
            TableOptions o = a->quick ? TableOptions::quick() : TableOptions();
            const TableOptions def, &t = a->opt;
            if (t.d != def.d) o.d = t.d;
            if (t.sqrt_n != def.sqrt_n) o.sqrt_n = t.sqrt_n;
            if (t.many_sqrt_n != def.many_sqrt_n) o.many_sqrt_n = t.many_sqrt_n;
            o.kinds.clear();
            for (const std::string& k : a->kinds) o.kinds.push_back(&moe::ffn_kind(k, "--kinds"));
            if (t.batch != def.batch) o.batch = t.batch;
            if (t.context != def.context) o.context = t.context;
            if (t.repeats != def.repeats) o.repeats = t.repeats;
            if (t.warmup != def.warmup) o.warmup = t.warmup;
            o.max_memory_gib = t.max_memory_gib;
            o.seed = t.seed;
            o.sets = t.sets;
            o.device = parse_device(a->device);
            Progress bar(1, 0, stderr);
            TableResult r = run_table(o, [&](int done, int total, const std::string& what) {
              bar.bar(done, total, what);
            });
            fmt::print("{}", table_markdown(r));
            for (const std::string& w : slope_warnings(r))
              fmt::print(stderr, "table: warning: {}\n", w);
            if (!a->out.empty()) {
              write_table_outputs(r, a->out);
              fmt::print(stderr, "table: wrote {}/table.{{md,csv,json}} and *_vs_n.svg\n", a->out);
            }
            return 0;
          }};
}

}  // namespace monet::app
