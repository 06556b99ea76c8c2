// `monet instruct-eval`: exact match and response loss per task family, per cluster, held-in vs
// held-out (eval/instruct_eval.h).
#include <fmt/format.h>

#include <chrono>

#include "app/command.h"
#include "eval/instruct_eval.h"
#include "train/checkpoint.h"
#include "train/model.h"
#include "util/timing.h"

namespace monet::app {

namespace fs = std::filesystem;

Command add_instruct_eval_command(CLI::App& app) {
  struct Args {
    std::string ckpt, data = "data/toy4_instruct", out, device;
    InstructEvalOptions o;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "instruct-eval", "exact match and response loss per task family, held-in vs held-out");
  cmd->add_option("--ckpt", a->ckpt, "run or checkpoint folder")->required();
  cmd->add_option("--data", a->data, "instruction data folder")->capture_default_str();
  cmd->add_option("--out", a->out, "output folder")->default_str("<run>/instruct_eval");
  cmd->add_option("--split", a->o.split, "test or train")
      ->check(CLI::IsMember({"test", "train"}))
      ->capture_default_str();
  cmd->add_option("--families", a->o.families, "only these families (comma list)")
      ->default_str("all");
  cmd->add_option("--limit", a->o.limit, "examples per family (0: all)")
      ->check(at_least(0))
      ->capture_default_str();
  cmd->add_option("--max-new", a->o.max_new, "longest answer generated, in tokens")
      ->check(positive())
      ->capture_default_str();
  cmd->add_option("--batch", a->o.batch, "rows per forward of the response loss")
      ->check(positive())
      ->capture_default_str();
  add_device_option(cmd, a->device);
  return {cmd, [a] {
            const auto t0 = std::chrono::steady_clock::now();
            Config cfg;
            auto model = load_model(a->ckpt, &cfg, parse_device(a->device), note_to_stderr);
            const auto tokenizer = load_tokenizer(a->ckpt);
            const InstructData data = load_instruct_data(find_data(a->data, a->ckpt));
            if (a->o.families == "all") a->o.families.clear();
            const InstructEvalResult r = instruct_eval(
                *model, *tokenizer, data, a->o,
                [&](int64_t done, int64_t total, const InstructScore& s) {
                  fmt::print(stderr, "instruct-eval: {}/{} {} exact match {}/{} ({:.0f} s)\n", done,
                             total, s.name, s.correct, s.examples, seconds_since(t0));
                });
            const fs::path ckpt = resolve_checkpoint(a->ckpt);
            const fs::path run = ckpt.filename() == "checkpoint" ? ckpt.parent_path() : ckpt;
            const fs::path out = a->out.empty() ? run / "instruct_eval" : fs::path(a->out);
            write_instruct_outputs(r, out);
            fmt::print("{}", instruct_markdown(r));
            fmt::print(stderr, "instruct-eval: wrote {}/instruct_eval.{{md,json}} in {:.1f} s\n",
                       out.string(), seconds_since(t0));
            return 0;
          }};
}

}  // namespace monet::app
