// Sharded safetensors, as Hugging Face writes a large checkpoint: `model.safetensors.index.json`
//
//   {"metadata": {"total_size": 1234}, "weight_map": {"<tensor name>": "<shard file>", ...}}
//
// beside the shard files it names (model-00001-of-00002.safetensors, ...), each an ordinary
// safetensors file (train/safetensors.h). The index is the authority: every tensor it names must
// be in the shard it names, and a shard may hold nothing the index does not list.
#pragma once
#include <filesystem>
#include <functional>

#include "train/safetensors.h"

namespace monet {

// Every tensor of the shards, in name order, and the index's metadata (string values as they
// are, others as JSON text). Errors (one line, naming the index, the shard and the tensor) on a
// missing shard, a tensor the index names but its shard lacks, a tensor a shard holds but the index
// does not map to it, a shard path outside the index's folder, and a malformed index (duplicated
// keys too).
Safetensors load_sharded_safetensors(const std::filesystem::path& index_file);

// The same, one shard at a time (the peak is one shard, not the checkpoint): `visit` gets each
// shard's tensors, checked against the index, in the order the index names them. Every shard is
// checked to exist before the first is read. Returns the index's metadata.
Metadata for_each_shard(const std::filesystem::path& index_file,
                        const std::function<void(NamedTensors&&)>& visit);
// A checkpoint folder's weights shard by shard: model.safetensors (one visit), else the shards of
// model.safetensors.index.json; an error naming both when neither is.
void for_each_model_shard(const std::filesystem::path& dir,
                          const std::function<void(NamedTensors&&)>& visit);

// A checkpoint folder's weights: `model.safetensors` when it is there, else the shards of
// `model.safetensors.index.json`; an error naming both when neither is.
Safetensors load_model_safetensors(const std::filesystem::path& dir);

}  // namespace monet
