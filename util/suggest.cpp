#include "util/suggest.h"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>

namespace monet {

size_t edit_distance(std::string_view a, std::string_view b) {
  // d[i][j]: distance of a[0, i) to b[0, j), three rows kept (the transposition looks two back).
  std::vector<size_t> prev2(b.size() + 1), prev(b.size() + 1), cur(b.size() + 1);
  std::iota(prev.begin(), prev.end(), size_t{0});
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        cur[j] = std::min(cur[j], prev2[j - 2] + 1);  // "trian" -> "train": one swap
    }
    std::swap(prev2, prev);
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string nearest_name(std::string_view name, const std::vector<std::string>& known) {
  const size_t bound = std::max<size_t>(1, name.size() / 3);
  std::string best;
  size_t best_d = bound + 1;
  for (const std::string& k : known) {
    const size_t d = edit_distance(name, k);
    if (d < best_d) best = k, best_d = d;
  }
  return best;
}

std::string did_you_mean(std::string_view name, const std::vector<std::string>& known) {
  const std::string n = nearest_name(name, known);
  return n.empty() ? "" : fmt::format(" (did you mean '{}'?)", n);
}

}  // namespace monet
