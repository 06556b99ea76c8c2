#include "moe/masking.h"

#include <map>

#include "core/ops.h"
#include "nn/linear.h"

namespace monet::moe {

namespace {

Tensor rows(const Tensor& w, int64_t i, int64_t size) {
  return slice(w, 0, i * size, (i + 1) * size);
}
Tensor cols(const Tensor& w, int64_t i, int64_t size) {
  return slice(w, 1, i * size, (i + 1) * size);
}

// Σ_h ĝ1_hi ĝ2_hj as [B, T, 1].
Tensor pair_score(const Routing& r, int64_t i, int64_t j) {
  Tensor g1 = slice(r.g1, 3, i, i + 1), g2 = slice(r.g2, 3, j, j + 1);  // [B, T, H, 1]
  return sum(mul(g1, g2), {2});                                         // [B, T, 1]
}

void check_pairs(const ExpertPairs& s, int64_t sqrt_n) {
  for (const auto& [i, j] : s)
    MONET_CHECK(i >= 0 && i < sqrt_n && j >= 0 && j < sqrt_n,
                "monet masking: expert ({}, {}) outside [0, {})²", i, j, sqrt_n);
}

// Memoised sub-expert activations: relu²(U_i x + b_i), computed once per index.
struct Activations {
  const Tensor& x;
  const Tensor &weight, &bias;
  int64_t width;
  std::map<int64_t, Tensor> cache;
  const Tensor& operator()(int64_t i) {
    auto it = cache.find(i);
    if (it == cache.end())
      it = cache.emplace(i, relu2(nn::linear(x, rows(weight, i, width), rows(bias, i, width))))
               .first;
    return it->second;
  }
};

}  // namespace

Tensor hd_contribution(const Tensor& x, const HdWeights& w, const Routing& r,
                       const ExpertPairs& s) {
  const int64_t sqrt_n = w.b.size(0), m = w.u_weight.size(0) / sqrt_n, d = w.b.size(1);
  check_pairs(s, sqrt_n);
  Tensor out = zeros({x.size(0), x.size(1), d}, x.dtype(), x.device());
  Activations a{x, w.u_weight, w.u_bias, m, {}};
  for (const auto& [i, j] : s) {  // E_ij(x) = V_j relu²(U_i x + b1_i) + b2_j
    Tensor e = add(nn::linear(a(i), cols(w.v_weight, j, m)), reshape(slice(w.b, 0, j, j + 1), {d}));
    out = add(out, mul(pair_score(r, i, j), e));
  }
  return out;
}

Tensor vd_contribution(const Tensor& x, const VdWeights& w, const Routing& r,
                       const ExpertPairs& s) {
  const int64_t sqrt_n = w.b1.size(0), hm = w.u1_weight.size(0) / sqrt_n, h = w.b1.size(1);
  check_pairs(s, sqrt_n);
  Tensor out = zeros({x.size(0), x.size(1), 2 * h}, x.dtype(), x.device());
  Activations a1{x, w.u1_weight, w.u1_bias, hm, {}}, a2{x, w.u2_weight, w.u2_bias, hm, {}};
  for (const auto& [i, j] : s) {
    // top = V11_i a1_i + V12_i a2_j + b1_i,  bottom = V21_j a1_i + V22_j a2_j + b2_j
    Tensor top =
        add(add(nn::linear(a1(i), cols(w.v11, i, hm)), nn::linear(a2(j), cols(w.v12, i, hm))),
            reshape(slice(w.b1, 0, i, i + 1), {h}));
    Tensor bottom =
        add(add(nn::linear(a1(i), cols(w.v21, j, hm)), nn::linear(a2(j), cols(w.v22, j, hm))),
            reshape(slice(w.b2, 0, j, j + 1), {h}));
    out = add(out, mul(pair_score(r, i, j), concat({top, bottom}, -1)));
  }
  return out;
}

Routing mask_subexperts(const Routing& r, const std::vector<int64_t>& removed1,
                        const std::vector<int64_t>& removed2) {
  const int64_t sqrt_n = r.g1.size(-1);
  auto keep = [&](const std::vector<int64_t>& removed) {
    std::vector<double> k(static_cast<size_t>(sqrt_n), 1.0);
    for (int64_t i : removed) {
      MONET_CHECK(i >= 0 && i < sqrt_n, "monet masking: sub-expert {} outside [0, {})", i, sqrt_n);
      k[static_cast<size_t>(i)] = 0.0;
    }
    return from_vector(k, {sqrt_n}).to(r.g1.dtype()).to(r.g1.device());
  };
  return {mul(r.g1, keep(removed1)), mul(r.g2, keep(removed2))};
}

}  // namespace monet::moe
