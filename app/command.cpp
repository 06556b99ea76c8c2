// The shorthand options as the `--set run.*` overrides they stand for (app/command.h).
#include "app/command.h"

#include <utility>

#include "train/checkpoint.h"

namespace monet::app {

namespace {

// Each shorthand, its config key and the value given ("" when not given).
std::vector<std::pair<std::string, std::string>> shorthands(const std::string& device,
                                                            const GemmArgs& g) {
  return {{"--device", "run.device=" + device},
          {"--gemm", "run.gemm=" + g.gemm},
          {"--precision", "run.precision=" + g.precision}};
}

}  // namespace

std::vector<std::string> gemm_choices() {
  std::vector<std::string> c = {"auto"};
  for (const std::string& n : gemm_backends().names()) c.push_back(n);
  return c;
}

std::vector<std::string> shorthand_sets(const std::string& device, const GemmArgs& g) {
  std::vector<std::string> sets;
  for (const auto& [option, set] : shorthands(device, g))
    if (set.back() != '=') sets.push_back(set);
  return sets;
}

Error naming_shorthands(const Error& e, const std::string& device, const GemmArgs& g) {
  std::string msg = e.what();
  for (const auto& [option, set] : shorthands(device, g)) {
    const std::string blamed = "--set '" + set + "'";
    if (const size_t at = msg.find(blamed); at != std::string::npos)
      msg.replace(at, blamed.size(), option + " " + set.substr(set.find('=') + 1));
  }
  return Error(msg);
}

Config with_shorthands(const Config& cfg, const std::string& device, const GemmArgs& g) {
  try {
    return parse_config_text(to_json(cfg).dump(), shorthand_sets(device, g),
                             "the checkpoint's config");
  } catch (const Error& e) {
    throw naming_shorthands(e, device, g);
  }
}

RunConfig checkpoint_run(const std::string& ckpt, const std::string& device, const GemmArgs& g) {
  return with_shorthands(load_run_config(ckpt), device, g).run;
}

}  // namespace monet::app
