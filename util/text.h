// Small text helpers shared by the option and config readers.
#pragma once
#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

namespace monet {

// The parts of a comma list, empty ones kept for the caller to refuse by name:
// "a,b" → {a, b}; "a,,b" → {a, "", b}; "" → {""}.
inline std::vector<std::string> split_commas(std::string_view text) {
  std::vector<std::string> parts;
  for (size_t start = 0; start <= text.size();) {
    const size_t comma = std::min(text.find(',', start), text.size());
    parts.emplace_back(text.substr(start, comma - start));
    start = comma + 1;
  }
  return parts;
}

}  // namespace monet
