#include "train/safetensors_index.h"

#include <map>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "util/fileio.h"
#include "util/json_value.h"

namespace monet {

namespace fs = std::filesystem;
namespace {

// The index, checked, with the names of each shard in the order the index first names the shard.
struct Index {
  std::vector<std::pair<std::string, std::vector<std::string>>> shards;  // file, tensor names
  Metadata metadata;
};

Index read_index(const fs::path& index_file, const std::string& where) {
  const nlohmann::json index = parse_json_strict(read_file(index_file), where);
  MONET_CHECK(index.is_object(), "{}: not a JSON object", where);
  MONET_CHECK(index.contains("weight_map") && index["weight_map"].is_object(),
              "{}: no \"weight_map\" object", where);
  const nlohmann::json& map = index["weight_map"];
  MONET_CHECK(!map.empty(), "{}: the weight map is empty", where);
  Index out;
  std::map<std::string, size_t> slot;
  for (const auto& [name, file] : map.items()) {
    MONET_CHECK(file.is_string(), "{}: tensor '{}' maps to a {}, not a file name", where, name,
                file.type_name());
    const std::string shard = file.get<std::string>();
    MONET_CHECK(fs::path(shard).filename() == shard,
                "{}: shard '{}' of tensor '{}' is not a file name in the index's folder", where,
                shard, name);
    auto [it, fresh] = slot.try_emplace(shard, out.shards.size());
    if (fresh) {
      MONET_CHECK(fs::exists(index_file.parent_path() / shard),
                  "{}: shard '{}' (holding tensor '{}') does not exist", where, shard, name);
      out.shards.emplace_back(shard, std::vector<std::string>{});
    }
    out.shards[it->second].second.push_back(name);
  }
  if (index.contains("metadata") && index["metadata"].is_object())
    for (const auto& [k, v] : index["metadata"].items())
      out.metadata[k] = v.is_string() ? v.get<std::string>() : v.dump();
  return out;
}

// The index of a folder without model.safetensors; an error naming both files when it is missing.
fs::path index_of(const fs::path& dir) {
  const fs::path index = dir / "model.safetensors.index.json";
  MONET_CHECK(fs::exists(index),
              "checkpoint '{}' has neither model.safetensors nor model.safetensors.index.json",
              dir.string());
  return index;
}

}  // namespace

Metadata for_each_shard(const fs::path& index_file,
                        const std::function<void(NamedTensors&&)>& visit) {
  const std::string where = fmt::format("safetensors index '{}'", index_file.string());
  const Index index = read_index(index_file, where);  // every shard exists before one is read
  for (const auto& [shard, names] : index.shards) {
    std::map<std::string, Tensor> held;
    for (auto& [n, t] : load_safetensors(index_file.parent_path() / shard).tensors)
      held.emplace(n, std::move(t));
    NamedTensors tensors;
    for (const std::string& name : names) {
      auto it = held.find(name);
      MONET_CHECK(it != held.end(), "{}: tensor '{}' is not in its shard '{}'", where, name, shard);
      tensors.emplace_back(name, std::move(it->second));
      held.erase(it);
    }
    MONET_CHECK(held.empty(),
                "{}: shard '{}' holds tensor '{}', which the index does not map to it", where,
                shard, held.empty() ? "" : held.begin()->first);
    visit(std::move(tensors));
  }
  return index.metadata;
}

Safetensors load_sharded_safetensors(const fs::path& index_file) {
  std::map<std::string, Tensor> all;  // name order
  Safetensors out;
  out.metadata = for_each_shard(index_file, [&](NamedTensors&& shard) {
    for (auto& [name, t] : shard) all.emplace(name, std::move(t));
  });
  for (auto& [name, t] : all) out.tensors.emplace_back(name, std::move(t));
  return out;
}

void for_each_model_shard(const fs::path& dir, const std::function<void(NamedTensors&&)>& visit) {
  const fs::path single = dir / "model.safetensors";
  if (fs::exists(single))
    visit(std::move(load_safetensors(single).tensors));
  else
    for_each_shard(index_of(dir), visit);
}

Safetensors load_model_safetensors(const fs::path& dir) {
  const fs::path single = dir / "model.safetensors";
  if (fs::exists(single)) return load_safetensors(single);
  return load_sharded_safetensors(index_of(dir));
}

}  // namespace monet
