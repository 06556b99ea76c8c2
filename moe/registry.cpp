#include "moe/registry.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/error.h"
#include "util/suggest.h"

namespace monet::moe {

// Each row is defined at the end of its layer's file.
const FfnKind& dense_kind();
const FfnKind& smoe_kind();
const FfnKind& peer_kind();
const FfnKind& monet_hd_kind();
const FfnKind& monet_vd_kind();

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

}  // namespace monet::moe
