// The brute-force PEER reference shared by test_peer_*.cpp: it scores ALL N experts per token and
// head (the full q·k over the N product keys [c_i; c′_j]), takes the true top k, and sums
// Σ_h Σ_j g_hj σ(u_jᵀx) v_j expert by expert; with the small options, the random weights and the
// element-wise comparison the tests use.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "core/ops.h"
#include "core/random.h"
#include "monet/peer.h"

namespace monet::testing::peer_reference {

using namespace monet::moe;

inline constexpr int64_t B = 2, T = 3, D = 6, H = 2, SQRT_N = 4, K = 3, DQ = 4;

inline PeerOptions small_options(const std::string& activation = "gelu",
                                 const std::string& score = "softmax", bool bn = true) {
  PeerOptions o = PeerOptions::defaults(D);
  o.sqrt_n = SQRT_N;
  o.heads = H;
  o.topk = K;
  o.d_query = DQ;
  o.activation = nn::parse_activation(activation);
  o.score = score == "softmax" ? PeerScore::Softmax : PeerScore::Sigmoid;
  o.query_batchnorm = bn;
  return o;
}

inline nn::ParamOptions f64(double init_std = 0.5) {
  return {DType::F64, Device::cpu(), init_std};
}

inline Tensor rnd(const Shape& s, Generator& g, double scale = 1.0) {
  return mul(randn(s, g, DType::F64), scale);
}

// Every product key k_{i·√N+j} = [c_i; c′_j] as an [N, d_q] matrix, differentiable in C and C′.
inline Tensor all_product_keys(const Tensor& c1, const Tensor& c2) {
  const int64_t s = c1.size(0);
  std::vector<int32_t> ri, rj;
  for (int32_t i = 0; i < s; ++i)
    for (int32_t j = 0; j < s; ++j) ri.push_back(i), rj.push_back(j);
  return concat({index_select(c1, 0, from_vector(ri, {s * s})),
                 index_select(c2, 0, from_vector(rj, {s * s}))},
                1);
}

// Eq. 1 by brute force: q [.., h, d_q] against all N keys, then the true top k.
inline PeerRetrieval brute_force_topk(const Tensor& q, const Tensor& c1, const Tensor& c2,
                                      int64_t k) {
  auto [scores, indices] = topk(matmul(q, transpose(all_product_keys(c1, c2), 0, 1)), k);
  return {scores, indices};
}

inline Tensor act(const Tensor& z, const std::string& a) {
  return a == "relu" ? relu(z) : gelu(z);
}

// Σ_h Σ_{j ∈ I_h, j ∉ removed} g_hj σ(u_jᵀ x) v_j, one expert at a time.
inline Tensor reference_experts(const Tensor& x, const Tensor& u, const Tensor& v,
                                const Tensor& indices, const Tensor& gates, const std::string& a,
                                const std::set<int64_t>& removed = {}) {
  const int64_t b_n = x.size(0), t_n = x.size(1), d = x.size(2), h_n = indices.size(2),
                k_n = indices.size(3);
  const std::vector<int32_t> ids = indices.to_vector<int32_t>();
  std::vector<Tensor> rows;
  for (int64_t b = 0; b < b_n; ++b)
    for (int64_t t = 0; t < t_n; ++t) {
      Tensor xt = slice(slice(x, 0, b, b + 1), 1, t, t + 1).reshape({d});
      Tensor y = zeros({d}, DType::F64);
      for (int64_t h = 0; h < h_n; ++h)
        for (int64_t s = 0; s < k_n; ++s) {
          const int64_t e = ids[((b * t_n + t) * h_n + h) * k_n + s];
          if (removed.count(e)) continue;
          Tensor ue = slice(u, 0, e, e + 1).reshape({d}), ve = slice(v, 0, e, e + 1).reshape({d});
          Tensor g =
              slice(slice(slice(slice(gates, 0, b, b + 1), 1, t, t + 1), 2, h, h + 1), 3, s, s + 1)
                  .reshape({1});
          Tensor z = sum(mul(ue, xt), {0}, true);  // u_eᵀ x, [1]
          y = add(y, mul(mul(act(z, a), g), ve));
        }
      rows.push_back(y.reshape({1, d}));
    }
  return concat(rows, 0).reshape({b_n, t_n, d});
}

struct Params {
  Tensor wq, c1, c2, u, v;
};
inline Params params_of(const PeerFeedForward& layer) {
  return {layer.query().weight(), layer.keys1(), layer.keys2(), layer.u(), layer.v()};
}

// The whole layer by brute force. BatchNorm uses its own running statistics (rm, rv).
inline Tensor reference_layer(const PeerOptions& o, const Tensor& x, const Params& p,
                              const Tensor& rm, const Tensor& rv, bool training,
                              const std::set<int64_t>& removed = {}, Tensor* indices = nullptr) {
  const int64_t b_n = x.size(0), t_n = x.size(1);
  Tensor q = matmul(x, transpose(p.wq, 0, 1));
  if (o.query_batchnorm) q = batch_norm(q, 2, rm, rv, training);
  PeerRetrieval r = brute_force_topk(q.reshape({b_n, t_n, o.heads, o.d_query}), p.c1, p.c2, o.topk);
  if (indices) *indices = r.indices;
  Tensor g = o.score == PeerScore::Softmax ? softmax(r.scores, -1) : sigmoid(r.scores);
  return reference_experts(x, p.u, p.v, r.indices, g, nn::activation_name(o.activation), removed);
}

inline std::vector<double> grad_of(const Tensor& p) {
  return p.grad().defined() ? p.grad().to_vector<double>() : std::vector<double>(p.numel(), 0.0);
}

inline void expect_near(const std::vector<double>& a, const std::vector<double>& b, double tol,
                        const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i)
    ASSERT_NEAR(a[i], b[i], tol * (1 + std::abs(b[i]))) << what << " element " << i;
}

}  // namespace monet::testing::peer_reference
