// `monet kinds [KIND]`: the feed-forward kinds and their model.ffn keys — type, default, rule,
// help — printed from the registry rows (monet/registry.h), the one place they are declared.
#include <fmt/format.h>

#include "app/command.h"
#include "monet/registry.h"

namespace monet::app {

namespace {

std::string describe(const moe::FfnKind& k) {
  std::string s = fmt::format("{}: {}\n", k.name, k.summary);
  size_t w = 0;
  for (const moe::FieldInfo& f : k.fields) w = std::max(w, f.key.size());
  for (const moe::FieldInfo& f : k.fields) {
    const bool choice = f.rule == "one of " + f.type;  // the type already lists the choices
    s += fmt::format("  model.ffn.{:<{}}  {} [{}]  {}{}\n", f.key, w, f.type, f.default_text,
                     choice ? "" : f.rule + "; ", f.help);
  }
  return s;
}

}  // namespace

Command add_kinds_command(CLI::App& app) {
  auto kind = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand(
      "kinds", "list the feed-forward kinds and their model.ffn keys (type [default] rule; help)");
  cmd->add_option("kind", *kind, "only this kind");
  return {cmd,
          [kind] {
            if (!kind->empty()) {
              fmt::print("{}", describe(moe::ffn_kind(*kind, "kinds: the kind")));
              return 0;
            }
            std::string s;
            for (const moe::FfnKind* k : moe::ffn_kinds()) s += describe(*k) + "\n";
            fmt::print("{}d is model.d; `--set model.ffn.KEY=VALUE` overrides a key.\n", s);
            return 0;
          },
          /*multi_process=*/false, /*banner=*/false};  // text only
}

}  // namespace monet::app
