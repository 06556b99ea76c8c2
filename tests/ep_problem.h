// A random sparse-MoE problem for the expert-parallel tests (test_expert_parallel.cpp and the MPI
// check mpi/ep_check.cpp; no gtest here): every process builds the same one from the same seed,
// runs moe_dropless on all of it as the reference, and compares its own share of the
// expert-parallel dispatch against the reference's rows and weight slices.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/random.h"
#include "monet/dispatch.h"

namespace monet::testing::ep {

struct Spec {
  int64_t n = 24, k = 2, d = 6, m = 5, experts = 8;
  int64_t empty_expert = 5;  // receives no token (−1: none kept empty)
  int masked_in_8 = 1;       // about this many slots in 8 get −1
  // Tokens [0, home_tokens) route only to experts [0, home_experts): with home_tokens the first
  // rank's share and home_experts its experts, that rank sends nothing to the others.
  int64_t home_tokens = 0, home_experts = 0;
  uint64_t seed = 1;
};

// All leaves F32; x, gates, w1, w2 require grad. gy is the upstream gradient of y [n, d].
struct Problem {
  Spec spec;
  std::vector<int32_t> idx_host;  // [n·k]
  Tensor x, idx, gates, gy;
  moe::ExpertWeights w;
};

inline Problem make_problem(const Spec& spec) {
  Generator g(spec.seed);
  Problem p;
  p.spec = spec;
  const int64_t n = spec.n, k = spec.k, E = spec.experts;
  p.idx_host.resize(static_cast<size_t>(n * k));
  for (int64_t t = 0; t < n; ++t)
    for (int64_t s = 0; s < k; ++s) {
      int32_t e = -1;
      if (g.randint(8) >= spec.masked_in_8) {
        const int64_t pool = t < spec.home_tokens ? spec.home_experts : E;
        do e = static_cast<int32_t>(g.randint(pool));
        while (e == spec.empty_expert);
      }
      p.idx_host[static_cast<size_t>(t * k + s)] = e;
    }
  p.idx = from_vector(p.idx_host, {n, k});
  p.x = randn({n, spec.d}, g).requires_grad_();
  p.gates = rand({n, k}, g).requires_grad_();
  p.w.w1 = mul(randn({E, spec.m, spec.d}, g), 0.5).requires_grad_();
  p.w.w2 = mul(randn({E, spec.d, spec.m}, g), 0.5).requires_grad_();
  p.gy = randn({n, spec.d}, g);
  return p;
}

// Rows [a, b) of t along axis 0, as a new leaf (requiring grad when t does).
inline Tensor rows_leaf(const Tensor& t, int64_t a, int64_t b) {
  Tensor out = slice(t.detach(), 0, a, b).contiguous();
  if (t.requires_grad()) out.requires_grad_();
  return out;
}

// The number of elements of `got` that differ from `want` by more than
// tol · max(|want_i|, 1e-3 · max_j |want_j|), and how many differ in any bit; *max_rel gets the
// largest |got_i − want_i| / max(|want_i|, 1e-3 · max_j |want_j|).
struct Diff {
  int64_t over = 0, bits = 0;
  double max_rel = 0;
};
inline Diff compare(const Tensor& got, const Tensor& want, double tol) {
  const std::vector<float> a = got.to_vector<float>(), b = want.to_vector<float>();
  Diff d;
  if (a.size() != b.size()) {
    d.over = d.bits = static_cast<int64_t>(std::max(a.size(), b.size()));
    return d;
  }
  double scale = 0;
  for (float v : b) scale = std::max(scale, static_cast<double>(std::abs(v)));
  for (size_t i = 0; i < a.size(); ++i) {
    d.bits += std::memcmp(&a[i], &b[i], sizeof(float)) != 0;
    const double den = std::max(static_cast<double>(std::abs(b[i])), 1e-3 * scale);
    const double rel = den > 0 ? std::abs(static_cast<double>(a[i]) - b[i]) / den
                               : std::abs(static_cast<double>(a[i]) - b[i]);
    d.max_rel = std::max(d.max_rel, rel);
    d.over += rel > tol;
  }
  return d;
}

}  // namespace monet::testing::ep
