#include "monet/registry.h"

#include <fmt/format.h>

#include <algorithm>
#include <optional>

#include "core/error.h"
#include "util/suggest.h"
#include "util/text.h"

namespace monet::moe {

const std::vector<const FfnKind*>& ffn_kinds() {
  static const std::vector<const FfnKind*> kinds = {
      &dense_kind(), &smoe_kind(), &peer_kind(), &monet_hd_kind(), &monet_vd_kind(),
  };
  return kinds;
}

std::vector<std::string> ffn_kind_names() {
  std::vector<std::string> names(ffn_kinds().size());
  std::transform(ffn_kinds().begin(), ffn_kinds().end(), names.begin(),
                 [](const FfnKind* k) { return k->name; });
  return names;
}

const FfnKind& ffn_kind(std::string_view name, std::string_view what) {
  const auto& kinds = ffn_kinds();
  const auto it =
      std::find_if(kinds.begin(), kinds.end(), [&](const FfnKind* k) { return k->name == name; });
  if (it != kinds.end()) return **it;
  throw Error(fmt::format("{} must be one of {}, got '{}'{}", what,
                          fmt::join(ffn_kind_names(), "|"), name,
                          did_you_mean(name, ffn_kind_names())));
}

// "layers.<i>.ffn.<name in the layer>" → <name in the layer>; nullopt outside the FFN layers.
namespace {
std::optional<std::string_view> name_in_ffn(std::string_view name) {
  constexpr std::string_view layers = "layers.", ffn = ".ffn.";
  if (name.substr(0, layers.size()) != layers) return std::nullopt;
  const size_t dot = name.find('.', layers.size());
  if (dot == std::string_view::npos || name.substr(dot, ffn.size()) != ffn) return std::nullopt;
  return name.substr(dot + ffn.size());
}
}  // namespace

ParamGroup param_group(std::string_view name, const FfnKind& kind) {
  const auto inner = name_in_ffn(name);
  if (!inner) return ParamGroup::NonExperts;
  return kind.is_expert_param(*inner) ? ParamGroup::Experts : ParamGroup::Routers;
}

std::string_view param_group_name(ParamGroup g) {
  switch (g) {
    case ParamGroup::Experts:
      return "experts";
    case ParamGroup::Routers:
      return "routers";
    case ParamGroup::NonExperts:
      break;
  }
  return "non-experts";
}

std::vector<ParamGroup> parse_freeze(std::string_view text) {
  const std::vector<ParamGroup> all = {ParamGroup::Routers, ParamGroup::Experts,
                                       ParamGroup::NonExperts};
  std::vector<ParamGroup> out;
  if (text == "none") return out;
  for (const std::string& part : split_commas(text)) {
    const auto it = std::find_if(all.begin(), all.end(),
                                 [&](ParamGroup g) { return param_group_name(g) == part; });
    MONET_CHECK(it != all.end(),
                "config key 'finetune.freeze' must be none or a comma list of "
                "routers|experts|non-experts, got '{}' (no group '{}')",
                text, part);
    MONET_CHECK(std::find(out.begin(), out.end(), *it) == out.end(),
                "config key 'finetune.freeze' names '{}' twice, got '{}'", part, text);
    out.push_back(*it);
  }
  MONET_CHECK(out.size() < all.size(),
              "config key 'finetune.freeze' = '{}' freezes every parameter: nothing would train",
              text);
  return out;
}

}  // namespace monet::moe
