// Small text helpers shared by the option and config readers.
#pragma once
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
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

// "812 B", "3.8 MiB", "15.51 GiB": a size in the unit that shows it best (powers of 1024).
inline std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (u < 4 && std::abs(bytes) >= 1024.0) bytes /= 1024.0, ++u;
  if (u == 0) return fmt::format("{:.0f} B", bytes);
  return fmt::format("{:.{}f} {}", bytes, std::abs(bytes) < 10 ? 2 : 1, units[u]);
}

// "850", "35.2k", "1.05M", "4.1B": a count with its metric suffix.
inline std::string format_count(double n) {
  const char* suffix[] = {"", "k", "M", "B", "T"};
  int u = 0;
  while (u < 4 && std::abs(n) >= 1000.0) n /= 1000.0, ++u;
  if (u == 0) return fmt::format("{:.0f}", n);
  return fmt::format("{:.{}f}{}", n, std::abs(n) < 10 ? 2 : 1, suffix[u]);
}

}  // namespace monet
