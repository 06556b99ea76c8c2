// causal_attention (core/ops/attention.cpp), the fused blockwise causal attention, against two
// references: the composition it replaces, matmul(causal_softmax(matmul(q, kᵀ), scale), v), and
// a slow loop over (matrix, query, key) written here, forward and the gradients of q, k and v,
// in float and double. Shapes cross the query-block boundaries (T = 70 > 64 > 32), include cached
// keys (Tk > T, the queries at the end) and a strided v (the transpose of a [B, T, H, hd] tensor,
// as attention passes it). Gradient checks against finite differences are in test_ops_grad.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/random.h"

using namespace monet;

namespace {

struct Result {
  std::vector<double> out, dq, dk, dv;  // dense, in the shapes of out, q, k, v
};

// The slow reference, in double: for each matrix n, query i (absolute position Tk − T + i):
//   s_ij = scale·q_i·k_j for j ≤ Tk − T + i,  p_i = softmax(s_i),  o_i = Σ_j p_ij v_j,
// and for L = Σ o ⊙ w:  dv_j = Σ_i p_ij w_i,  dp_ij = w_i·v_j,
//   ds_ij = p_ij (dp_ij − Σ_j' p_ij' dp_ij'),  dq_i = scale Σ_j ds_ij k_j,  dk_j = scale Σ_i ds_ij
//   q_i.
Result reference(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& w, double scale) {
  const int64_t T = q.size(-2), Tk = k.size(-2), hd = q.size(-1), N = q.numel() / (T * hd);
  const std::vector<double> Q = q.to_vector<double>(), K = k.to_vector<double>(),
                            V = v.to_vector<double>(), W = w.to_vector<double>();
  Result r{std::vector<double>(Q.size()), std::vector<double>(Q.size()),
           std::vector<double>(K.size()), std::vector<double>(K.size())};
  for (int64_t n = 0; n < N; ++n) {
    auto qa = [&](int64_t i, int64_t c) { return (n * T + i) * hd + c; };
    auto ka = [&](int64_t j, int64_t c) { return (n * Tk + j) * hd + c; };
    for (int64_t i = 0; i < T; ++i) {
      const int64_t valid = Tk - T + i + 1;
      std::vector<double> p(static_cast<size_t>(valid)), dp(p.size());
      double mx = -INFINITY, z = 0;
      for (int64_t j = 0; j < valid; ++j) {
        double s = 0;
        for (int64_t c = 0; c < hd; ++c) s += Q[qa(i, c)] * K[ka(j, c)];
        p[j] = scale * s;
        mx = std::max(mx, p[j]);
      }
      for (double& x : p) z += (x = std::exp(x - mx));
      for (double& x : p) x /= z;
      double dot = 0;
      for (int64_t j = 0; j < valid; ++j) {
        for (int64_t c = 0; c < hd; ++c) {
          r.out[qa(i, c)] += p[j] * V[ka(j, c)];
          r.dv[ka(j, c)] += p[j] * W[qa(i, c)];
          dp[j] += W[qa(i, c)] * V[ka(j, c)];
        }
        dot += p[j] * dp[j];
      }
      for (int64_t j = 0; j < valid; ++j) {
        const double ds = p[j] * (dp[j] - dot);
        for (int64_t c = 0; c < hd; ++c) {
          r.dq[qa(i, c)] += scale * ds * K[ka(j, c)];
          r.dk[ka(j, c)] += scale * ds * Q[qa(i, c)];
        }
      }
    }
  }
  return r;
}

// f(q, k, v) and the gradients of L = Σ f ⊙ w. v is passed as given (possibly a strided view).
template <class F>
Result run(F f, const Tensor& q0, const Tensor& k0, const Tensor& v0, const Tensor& w) {
  Tensor q = q0.detach().requires_grad_(), k = k0.detach().requires_grad_(),
         v = v0.detach().requires_grad_();
  Tensor out = f(q, k, v);
  sum(mul(out, w)).backward();
  return {out.to_vector<double>(), q.grad().to_vector<double>(), k.grad().to_vector<double>(),
          v.grad().to_vector<double>()};
}

void expect_near(const std::vector<double>& got, const std::vector<double>& want, double tol,
                 const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int failures = 0;
  for (size_t i = 0; i < got.size() && failures < 5; ++i)
    if (!(std::abs(got[i] - want[i]) <= tol * (1 + std::abs(want[i])))) {
      ++failures;
      ADD_FAILURE() << what << ": element " << i << " is " << got[i] << ", want " << want[i];
    }
}

void expect_same(const Result& got, const Result& want, double tol, const std::string& what) {
  expect_near(got.out, want.out, tol, what + " forward");
  expect_near(got.dq, want.dq, tol, what + " dq");
  expect_near(got.dk, want.dk, tol, what + " dk");
  expect_near(got.dv, want.dv, tol, what + " dv");
}

struct Shapes {
  int64_t B, H, T, Tk, hd;
  bool strided_v;  // v as the transpose of a [B, Tk, H, hd] tensor
};

void check(const Shapes& s, DType dt, double tol) {
  const std::string what = "[" + std::to_string(s.B) + ", " + std::to_string(s.H) + ", " +
                           std::to_string(s.T) + "/" + std::to_string(s.Tk) + ", " +
                           std::to_string(s.hd) + "]" + (s.strided_v ? " strided v" : "") +
                           (dt == DType::F32 ? " f32" : " f64");
  Generator g(11);
  Tensor q = randn({s.B, s.H, s.T, s.hd}, g, dt), k = randn({s.B, s.H, s.Tk, s.hd}, g, dt);
  Tensor v = s.strided_v ? transpose(randn({s.B, s.Tk, s.H, s.hd}, g, dt), 1, 2)
                         : randn({s.B, s.H, s.Tk, s.hd}, g, dt);
  Tensor w = randn({s.B, s.H, s.T, s.hd}, g, dt);
  const double scale = 1.0 / std::sqrt(static_cast<double>(s.hd));
  const Result fused = run(
      [&](const Tensor& a, const Tensor& b, const Tensor& c) {
        Tensor y = causal_attention(a, b, c, scale);
        EXPECT_EQ(y.shape(), a.shape()) << what;
        return y;
      },
      q, k, v, w);
  const Result composed = run(
      [&](const Tensor& a, const Tensor& b, const Tensor& c) {
        return matmul(causal_softmax(matmul(a, transpose(b, 2, 3)), scale), c);
      },
      q, k, v, w);
  expect_same(fused, reference(q, k, v, w, scale), tol, what + " vs the loop reference");
  expect_same(fused, composed, tol, what + " vs the composition");
}

const Shapes kShapes[] = {
    {2, 3, 70, 70, 16, false},  // square, three query blocks of 32 (two of 64), a partial last
    {2, 3, 70, 70, 16, true},   // v strided, as attention passes it
    {1, 2, 70, 75, 8, true},    // cached: 5 keys before the first query
    {2, 2, 33, 33, 4, false},   // one row past a block of 32
    {1, 2, 1, 9, 8, false},     // decoding one token over 8 cached ones
    {3, 1, 5, 5, 3, false},     // smaller than a block
};

TEST(CausalAttention, MatchesReferenceAndCompositionF64) {
  for (const Shapes& s : kShapes) check(s, DType::F64, 1e-10);
}

TEST(CausalAttention, MatchesReferenceAndCompositionF32) {
  for (const Shapes& s : kShapes) check(s, DType::F32, 2e-5);
}

TEST(CausalAttention, FourDimOutputIsTheTransposeOfTokenMajorMemory) {
  Generator g(3);
  Tensor q = randn({2, 3, 5, 4}, g), k = randn({2, 3, 5, 4}, g), v = randn({2, 3, 5, 4}, g);
  Tensor y = causal_attention(q, k, v, 0.5);
  EXPECT_TRUE(transpose(y, 1, 2).is_contiguous());  // [B, T, H, hd] dense: the reshape is free
}

TEST(CausalAttention, BadShapesNameTheOpAndTheShapes) {
  Generator g(4);
  Tensor q = randn({2, 3, 5, 4}, g);
  auto message = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  // More queries than keys.
  const std::string m1 = message([&] {
    causal_attention(q, randn({2, 3, 4, 4}, g), randn({2, 3, 4, 4}, g), 1.0);
  });
  EXPECT_NE(m1.find("causal_attention"), std::string::npos) << m1;
  EXPECT_NE(m1.find("[2, 3, 5, 4]"), std::string::npos) << m1;
  EXPECT_NE(m1.find("[2, 3, 4, 4]"), std::string::npos) << m1;
  // Different leading axes, head dims, k/v shapes, dtypes.
  EXPECT_THROW(causal_attention(q, randn({2, 2, 5, 4}, g), randn({2, 2, 5, 4}, g), 1.0), Error);
  EXPECT_THROW(causal_attention(q, randn({2, 3, 5, 3}, g), randn({2, 3, 5, 3}, g), 1.0), Error);
  EXPECT_THROW(causal_attention(q, randn({2, 3, 5, 4}, g), randn({2, 3, 6, 4}, g), 1.0), Error);
  EXPECT_THROW(causal_attention(q, randn({2, 3, 5, 4}, g), randn({2, 3, 5, 4}, g, DType::F64), 1.0),
               Error);
}

}  // namespace
