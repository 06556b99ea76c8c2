// Fuzz target: decode_safetensors (train/safetensors.h) on any bytes. What it accepts must also
// survive the writer: encode -> decode gives the same tensors, and encoding again gives the same
// bytes.
#include <cstring>

#include "core/error.h"
#include "fuzz/fuzz.h"
#include "train/safetensors.h"

namespace monet::fuzz {
namespace {

bool same(const Safetensors& a, const Safetensors& b) {
  if (a.metadata != b.metadata || a.tensors.size() != b.tensors.size()) return false;
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    const auto& [na, ta] = a.tensors[i];
    const auto& [nb, tb] = b.tensors[i];
    if (na != nb || ta.dtype() != tb.dtype() || ta.shape() != tb.shape()) return false;
    const size_t n = static_cast<size_t>(ta.numel()) * dtype_size(ta.dtype());
    if (n > 0 && std::memcmp(ta.raw_data(), tb.raw_data(), n) != 0) return false;
  }
  return true;
}

}  // namespace

void fuzz_one(std::string_view input) {
  const Safetensors st = decode_safetensors(input, "fuzz");
  try {
    const std::string bytes = encode_safetensors(st.tensors, st.metadata);
    const Safetensors back = decode_safetensors(bytes, "fuzz, re-encoded");
    if (!same(st, back)) fail("safetensors: encode -> decode changed the tensors");
    if (encode_safetensors(back.tensors, back.metadata) != bytes)
      fail("safetensors: encoding twice gave different bytes");
  } catch (const Error& e) {
    fail(fmt::format("safetensors: a decoded file does not encode and decode again: {}", e.what()));
  }
}

std::vector<std::string> dictionary() {
  return {"\"dtype\"", "\"shape\"",  "\"data_offsets\"", "\"__metadata__\"", "\"F32\"",
          "\"F64\"",   "\"I32\"",    "\"BF16\"",         "\"F16\"",          "\"I64\"",
          "\"U8\"",    "\"format\"", "\"pt\"",           "[0, 0]",           "[0, 4]",
          "[]",        "[0]",        "[1, 1]",           "\"a\":",           "        "};
}

bool length_prefixed() {
  return true;
}

}  // namespace monet::fuzz
