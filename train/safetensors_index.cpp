#include "train/safetensors_index.h"

#include <map>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "util/fileio.h"
#include "util/json_value.h"

namespace monet {

namespace fs = std::filesystem;
Safetensors load_sharded_safetensors(const fs::path& index_file) {
  const std::string where = fmt::format("safetensors index '{}'", index_file.string());
  const nlohmann::json index = parse_json_strict(read_file(index_file), where);
  MONET_CHECK(index.is_object(), "{}: not a JSON object", where);
  MONET_CHECK(index.contains("weight_map") && index["weight_map"].is_object(),
              "{}: no \"weight_map\" object", where);
  const nlohmann::json& map = index["weight_map"];
  MONET_CHECK(!map.empty(), "{}: the weight map is empty", where);

  // Each shard loaded once, in the order the index first names it.
  std::map<std::string, std::map<std::string, Tensor>> shards;
  for (const auto& [name, file] : map.items()) {
    MONET_CHECK(file.is_string(), "{}: tensor '{}' maps to a {}, not a file name", where, name,
                file.type_name());
    const std::string shard = file.get<std::string>();
    MONET_CHECK(fs::path(shard).filename() == shard,
                "{}: shard '{}' of tensor '{}' is not a file name in the index's folder", where,
                shard, name);
    if (shards.count(shard)) continue;
    const fs::path path = index_file.parent_path() / shard;
    MONET_CHECK(fs::exists(path), "{}: shard '{}' (holding tensor '{}') does not exist", where,
                shard, name);
    std::map<std::string, Tensor>& held = shards[shard];
    for (auto& [n, t] : load_safetensors(path).tensors) held.emplace(n, std::move(t));
  }

  Safetensors out;
  for (const auto& [name, file] : map.items()) {
    const std::string shard = file.get<std::string>();
    const auto& held = shards.at(shard);
    const auto it = held.find(name);
    MONET_CHECK(it != held.end(), "{}: tensor '{}' is not in its shard '{}'", where, name, shard);
    out.tensors.emplace_back(name, it->second);
  }
  for (const auto& [shard, held] : shards)
    for (const auto& [name, t] : held)
      MONET_CHECK(map.contains(name) && map[name] == shard,
                  "{}: shard '{}' holds tensor '{}', which the index does not map to it", where,
                  shard, name);
  if (index.contains("metadata") && index["metadata"].is_object())
    for (const auto& [k, v] : index["metadata"].items())
      out.metadata[k] = v.is_string() ? v.get<std::string>() : v.dump();
  return out;
}

Safetensors load_model_safetensors(const fs::path& dir) {
  const fs::path single = dir / "model.safetensors", index = dir / "model.safetensors.index.json";
  if (fs::exists(single)) return load_safetensors(single);
  MONET_CHECK(fs::exists(index),
              "checkpoint '{}' has neither model.safetensors nor "
              "model.safetensors.index.json",
              dir.string());
  return load_sharded_safetensors(index);
}

}  // namespace monet
