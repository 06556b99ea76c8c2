// The row loops shared by softmax, log-softmax and causal attention's softmax (ops/softmax.cpp,
// ops/attention.cpp): the maximum of a row, then exp(scale · (x − max)) and its sum; and the
// softmax backward row.
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
  double total = 0;
  for (int64_t j = 0; j < n; ++j) {
    const V e = std::exp(scale * (x[j] - m));
    if (y) y[j] = e;
    total += e;
  }
  *mx = m;
  return total;
}

// Softmax's backward over a row of n with p = softmax(scale · x): dx = scale · p ⊙ (g − Σ_j g_j
// p_j). Exact where p = 0 (causal or masked entries). dx may be g (in place).
template <class V>
void softmax_backward_row(const V* p, const V* g, V* dx, int64_t n, double scale) {
  double dot = 0;
  for (int64_t j = 0; j < n; ++j) dot += static_cast<double>(g[j]) * p[j];
  for (int64_t j = 0; j < n; ++j) dx[j] = static_cast<V>(scale * p[j] * (g[j] - dot));
}

}  // namespace monet::cpu
