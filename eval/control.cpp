// Random expert sets matched on size and routing mass (see control.h).
#include "eval/control.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace monet::interp {

MatchedDraw matched_random_experts(const std::vector<double>& mass,
                                   const std::vector<int64_t>& selected, Generator& gen,
                                   double tolerance, int max_swaps) {
  const auto n = static_cast<int64_t>(mass.size());
  const auto k = static_cast<int64_t>(selected.size());
  MONET_CHECK(k <= n, "control: {} experts selected of {}", k, n);
  double target = 0;
  for (int64_t e : selected) {
    MONET_CHECK(e >= 0 && e < n, "control: expert {} of {}", e, n);
    target += mass[static_cast<size_t>(e)];
  }
  // A uniform k-subset: the first k of a partial Fisher-Yates shuffle; the rest are outside.
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t e = 0; e < n; ++e) order[static_cast<size_t>(e)] = e;
  for (int64_t i = 0; i < k; ++i)
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(i + gen.randint(n - i))]);
  double have = 0;
  for (int64_t i = 0; i < k; ++i) have += mass[static_cast<size_t>(order[static_cast<size_t>(i)])];
  auto within = [&](double m) {
    return target > 0 ? std::abs(m / target - 1) <= tolerance : m == 0;
  };
  for (int swaps = 0; k > 0 && k < n && swaps < max_swaps && !within(have); ++swaps) {
    const auto in = static_cast<size_t>(gen.randint(k));
    const auto out = static_cast<size_t>(k + gen.randint(n - k));
    const double next =
        have - mass[static_cast<size_t>(order[in])] + mass[static_cast<size_t>(order[out])];
    if (std::abs(next - target) < std::abs(have - target)) {
      std::swap(order[in], order[out]);
      have = next;
    }
  }
  MatchedDraw d;
  d.experts.assign(order.begin(), order.begin() + k);
  std::sort(d.experts.begin(), d.experts.end());
  d.mass = have;
  d.ratio = target > 0 ? have / target : (have == 0 ? 1.0 : INFINITY);
  d.matched = within(have);
  return d;
}

}  // namespace monet::interp
