// The safetensors checkpoint format (https://github.com/huggingface/safetensors), readable by the
// Python `safetensors` package:
//
//   [8 bytes: N, little-endian u64] [N bytes: JSON header, space-padded to a multiple of 8] [data]
//   header = {"<name>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
//             "__metadata__": {"<key>": "<string value>", ...}}
//
// Offsets count from the first byte after the header; data is raw little-endian, row-major. As in
// the reference implementation, the tensors must tile the data region exactly (no gap, no overlap,
// no trailing byte). Supported dtypes: F32, F64, I32, BF16; I64 (PyTorch's counters, such as
// BatchNorm's num_batches_tracked) is read as I32, an error for a value outside its range.
#pragma once
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace monet {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
using Metadata = std::map<std::string, std::string>;

struct Safetensors {
  NamedTensors tensors;  // CPU, contiguous, in data order (the order they were saved in)
  Metadata metadata;
};

// The file's bytes: tensors stored in the order given (copied to the CPU, made contiguous). Errors
// on an undefined or meta tensor, a duplicate name or the reserved name "__metadata__".
std::string encode_safetensors(const NamedTensors& tensors, const Metadata& metadata = {});
// Parses and validates `bytes`; errors say what is wrong and start with "safetensors '<source>'".
Safetensors decode_safetensors(std::string_view bytes, const std::string& source = "<memory>");

// Written atomically (util/fileio.h): a crash leaves the previous file intact.
void save_safetensors(const std::filesystem::path& path, const NamedTensors& tensors,
                      const Metadata& metadata = {});
Safetensors load_safetensors(const std::filesystem::path& path);

}  // namespace monet
