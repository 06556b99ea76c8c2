// The slow SMoE reference shared by test_smoe_*.cpp: y_t = Σ_s g[t,s] E_{idx[t,s]}(x_t), a loop
// over the tokens and over each token's chosen experts, with E_i(x) = V_i σ(U_i x) computed by
// per-expert ops on slices of the stacked weights; a check that two functions agree in their output
// and in the gradients of given leaves; and the small options and random weights the tests use.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/random.h"
#include "monet/smoe.h"

namespace monet::testing::smoe_reference {

using namespace monet::moe;

inline constexpr int64_t N = 8, D = 6, E = 4, M = 5;

inline Tensor rnd(const Shape& s, Generator& g, double scale = 0.5) {
  return mul(randn(s, g, DType::F64), scale);
}
inline Tensor leaf(Tensor t) {
  return t.requires_grad_();
}
inline Tensor idx_tensor(const std::vector<int32_t>& v, int64_t k) {
  return from_vector(v, {static_cast<int64_t>(v.size()) / k, k});
}
inline ExpertWeights random_experts(Generator& g, int64_t experts = E) {
  return {leaf(rnd({experts, M, D}, g)), leaf(rnd({experts, D, M}, g))};
}

// E_i(x) = V_i σ(U_i x) for one row x [1, d], with per-expert slices of the stacked weights.
inline Tensor expert(const Tensor& xt, const ExpertWeights& w, int64_t i, nn::Activation act) {
  Tensor u = squeeze(slice(w.w1, 0, i, i + 1), 0), v = squeeze(slice(w.w2, 0, i, i + 1), 0);
  Tensor h = matmul(xt, transpose(u, 0, 1));
  h = act == nn::Activation::ReLU2 ? relu2(h) : gelu(h);
  return matmul(h, transpose(v, 0, 1));
}
inline Tensor at(const Tensor& t, int64_t r, int64_t c) {  // element [r, c] as a [1, 1] tensor
  return slice(slice(t, 0, r, r + 1), 1, c, c + 1);
}

// y_t = Σ_s g[t,s] E_{idx[t,s]}(x_t), skipping idx < 0 and the pairs with keep[p] false.
inline Tensor reference_moe(const Tensor& x, const std::vector<int32_t>& idx, const Tensor& gates,
                            const ExpertWeights& w, nn::Activation act,
                            const std::vector<bool>& keep = {}) {
  const int64_t n = x.size(0), k = gates.size(1);
  std::vector<Tensor> rows;
  for (int64_t t = 0; t < n; ++t) {
    Tensor xt = slice(x, 0, t, t + 1), yt = zeros({1, D}, x.dtype());
    for (int64_t s = 0; s < k; ++s) {
      const int32_t e = idx[t * k + s];
      if (e < 0 || (!keep.empty() && !keep[t * k + s])) continue;
      yt = add(yt, mul(at(gates, t, s), expert(xt, w, e, act)));
    }
    rows.push_back(yt);
  }
  return concat(rows, 0);
}

// Outputs and the gradients of every leaf in `params` agree (same random output weighting).
inline void expect_same_function(const std::function<Tensor()>& a_fn,
                                 const std::function<Tensor()>& b_fn, std::vector<Tensor> params,
                                 double tol = 1e-10) {
  Generator g(99);
  Tensor ya = a_fn(), yb = b_fn();
  ASSERT_EQ(ya.shape(), yb.shape());
  Tensor w = randn(ya.shape(), g, DType::F64);
  std::vector<double> a = ya.to_vector<double>(), b = yb.to_vector<double>();
  for (size_t i = 0; i < a.size(); ++i)
    ASSERT_NEAR(a[i], b[i], tol * (1 + std::abs(b[i]))) << "output " << i;
  auto grads = [&](const Tensor& y) {
    for (Tensor& p : params) p.set_grad(Tensor());
    sum(mul(y, w)).backward();
    std::vector<std::vector<double>> gs;
    for (Tensor& p : params)
      gs.push_back(p.grad().defined() ? p.grad().to_vector<double>()
                                      : std::vector<double>(p.numel(), 0.0));
    return gs;
  };
  auto ga = grads(ya), gb = grads(yb);
  for (size_t p = 0; p < params.size(); ++p)
    for (size_t i = 0; i < ga[p].size(); ++i)
      ASSERT_NEAR(ga[p][i], gb[p][i], 10 * tol * (1 + std::abs(gb[p][i])))
          << "param " << p << " element " << i;
}

inline SmoeOptions small_options(const std::string& gating) {
  SmoeOptions o = SmoeOptions::defaults(D);
  o.experts = E;
  o.dim = M;
  o.gating = parse_gating(gating);
  return o;
}

}  // namespace monet::testing::smoe_reference
