// The row loop shared by softmax, log-softmax and causal attention's softmax (ops/softmax.cpp,
// ops/attention.cpp): the maximum of a row, then exp(scale · (x − max)) and its sum.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

namespace monet::cpu {

// Over x[0, n): sets *mx to the maximum, writes y[j] = exp(scale·(x[j] − max)) when y is not
// null, and returns Σ_j exp(scale·(x[j] − max)) in double.
template <class V>
double exp_row(const V* x, V* y, int64_t n, V scale, V* mx) {
  V m = x[0];
  for (int64_t j = 1; j < n; ++j) m = std::max(m, x[j]);
  double sum = 0;
  for (int64_t j = 0; j < n; ++j) {
    const V e = std::exp(scale * (x[j] - m));
    if (y) y[j] = e;
    sum += e;
  }
  *mx = m;
  return sum;
}

}  // namespace monet::cpu
