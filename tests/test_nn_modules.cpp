// nn/ modules, forward values against naive loops written here (in double, so the tolerances are
// tight), and the Module bookkeeping: names, order, buffers, modes, dtypes, devices.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>

#include "core/autograd.h"
#include "core/ops.h"
#include "nn/attention.h"
#include "nn/mlp.h"
#include "nn/norm.h"
#include "nn/transformer.h"

using namespace monet;
using namespace monet::nn;

namespace {

const ParamOptions kF64{DType::F64};

void expect_close(const Tensor& got, const std::vector<double>& want, double tol = 1e-10) {
  std::vector<double> g = got.to_vector<double>();
  ASSERT_EQ(g.size(), want.size());
  for (size_t i = 0; i < g.size(); ++i)
    ASSERT_NEAR(g[i], want[i], tol * (1 + std::abs(want[i]))) << "element " << i;
}

std::vector<double> vec(const Tensor& t) {
  return t.to_vector<double>();
}

// y[r, o] = Σᵢ x[r, i]·W[o, i] (+ b[o]), over the rows r of x [R, in].
std::vector<double> naive_linear(const std::vector<double>& x, int64_t rows, const Tensor& w,
                                 const Tensor& b = Tensor()) {
  const int64_t out = w.size(0), in = w.size(1);
  std::vector<double> W = vec(w), B = b.defined() ? vec(b) : std::vector<double>(out, 0.0);
  std::vector<double> y(rows * out);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double s = B[o];
      for (int64_t i = 0; i < in; ++i) s += x[r * in + i] * W[o * in + i];
      y[r * out + o] = s;
    }
  return y;
}

// RoPE on x [N, T, hd] at positions offset + t, with explicit cos/sin.
std::vector<double> naive_rope(std::vector<double> x, int64_t N, int64_t T, int64_t hd,
                               int64_t offset) {
  const int64_t half = hd / 2;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t t = 0; t < T; ++t) {
      double* r = &x[(n * T + t) * hd];
      for (int64_t i = 0; i < half; ++i) {
        const double a = static_cast<double>(offset + t) * std::pow(10000.0, -2.0 * i / hd);
        const double x1 = r[i], x2 = r[i + half];
        r[i] = x1 * std::cos(a) - x2 * std::sin(a);
        r[i + half] = x2 * std::cos(a) + x1 * std::sin(a);
      }
    }
  return x;
}

}  // namespace

// ---- Module bookkeeping ----

TEST(NnModule, NamedParametersOfTransformerInRegistrationOrder) {
  Generator g(0);
  TransformerConfig cfg{.vocab = 11, .d_model = 8, .n_layers = 2, .n_heads = 2, .context = 5};
  Transformer m(cfg, g);
  std::vector<std::string> names;
  for (auto& [n, t] : m.named_parameters()) names.push_back(n);
  std::vector<std::string> want{"embed.weight"};
  for (int l = 0; l < 2; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    for (const char* s : {"norm1.weight", "attn.wq.weight", "attn.wk.weight", "attn.wv.weight",
                          "attn.wo.weight", "norm2.weight", "ffn.w1.weight", "ffn.w2.weight"})
      want.push_back(p + s);
  }
  want.push_back("norm.weight");
  want.push_back("lm_head.weight");
  EXPECT_EQ(names, want);
  // 11·8 + 2·(8 + 4·64 + 8 + 2·8·32) + 8 + 8·11
  EXPECT_EQ(m.num_parameters(), 88 + 2 * (8 + 256 + 8 + 512) + 8 + 88);
  for (const Tensor& p : m.parameters()) {
    EXPECT_TRUE(p.requires_grad());
    EXPECT_TRUE(p.is_leaf());
    EXPECT_EQ(p.dtype(), DType::F32);
  }
  EXPECT_TRUE(m.named_buffers().empty());
}

TEST(NnModule, InitIsNormalWeightsUnitGainsZeroBias) {
  Generator g(1);
  Linear big(200, 100, true, g);
  std::vector<double> w = vec(big.weight());
  double s = 0, ss = 0;
  for (double x : w) s += x, ss += x * x;
  const double n = static_cast<double>(w.size()), mean = s / n,
               sd = std::sqrt(ss / n - mean * mean);
  EXPECT_NEAR(mean, 0.0, 1e-3);
  EXPECT_NEAR(sd, 0.02, 5e-4);
  for (double b : vec(big.bias())) EXPECT_EQ(b, 0.0);
  RMSNorm norm(4);
  for (double x : vec(norm.weight())) EXPECT_EQ(x, 1.0);
  // Same seed, same parameters; F64 holds the same draws.
  Generator g1(5), g2(5);
  Linear a(3, 4, false, g1), b(3, 4, false, g2, kF64);
  EXPECT_EQ(b.weight().dtype(), DType::F64);
  expect_close(a.weight(), vec(b.weight()), 1e-7);
}

namespace {
struct WithBuffer : Module {
  WithBuffer() {
    register_parameter("p", zeros({2}));
    register_buffer("running", ones({3}));
    child = register_module("child", std::make_shared<RMSNorm>(2));
    register_parameter("q", zeros({1}));
  }
  std::shared_ptr<RMSNorm> child;
};
}  // namespace

TEST(NnModule, BuffersModesZeroGradAndErrors) {
  WithBuffer m;
  std::vector<std::string> names;
  for (auto& [n, t] : m.named_parameters()) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"p", "child.weight", "q"}));
  ASSERT_EQ(m.named_buffers().size(), 1u);
  EXPECT_EQ(m.named_buffers()[0].first, "running");
  EXPECT_FALSE(m.named_buffers()[0].second.requires_grad());
  EXPECT_EQ(m.num_parameters(), 5);

  EXPECT_TRUE(m.is_training() && m.child->is_training());
  m.eval();
  EXPECT_FALSE(m.is_training() || m.child->is_training());
  m.train();
  EXPECT_TRUE(m.child->is_training());

  Tensor x = ones({3, 2});
  sum(m.child->forward(x)).backward();
  EXPECT_TRUE(m.child->weight().grad().defined());
  m.zero_grad();
  EXPECT_FALSE(m.child->weight().grad().defined());

  EXPECT_THROW(m.register_parameter("p", zeros({1})), Error);    // duplicate
  EXPECT_THROW(m.register_parameter("a.b", zeros({1})), Error);  // dotted
  EXPECT_THROW(m.register_buffer("child", zeros({1})), Error);   // clashes with a child
  EXPECT_THROW(m.register_parameter("i", zeros({1}, DType::I32)), Error);
  EXPECT_THROW(m.register_module("n", std::shared_ptr<Module>()), Error);
}

TEST(NnModule, TiedParameterListedOnce) {
  Generator g(0);
  struct Tied : Module {
    explicit Tied(Generator& g) {
      auto a = register_module("a", std::make_shared<Linear>(2, 2, false, g));
      register_parameter("same", a->weight());
    }
  } m(g);
  ASSERT_EQ(m.named_parameters().size(), 1u);
  EXPECT_EQ(m.named_parameters()[0].first, "a.weight");
}

TEST(NnModule, MetaDeviceCountsWithoutMemory) {
  Generator g(0);
  TransformerConfig cfg{.vocab = 32000,
                        .d_model = 1024,
                        .n_layers = 24,
                        .n_heads = 16,
                        .context = 2048,
                        .device = Device::meta()};
  Transformer m(cfg, g);
  const int64_t d = 1024, per_layer = 2 * d + 4 * d * d + 2 * 4 * d * d;
  EXPECT_EQ(m.num_parameters(), 2 * 32000 * d + 24 * per_layer + d);
  EXPECT_TRUE(m.parameters()[0].device().is_meta());
}

// ---- layers ----

TEST(NnLinear, ForwardMatchesLoop) {
  Generator g(2);
  Linear lin(4, 3, true, g, kF64);
  copy_(lin.bias(), randn({3}, g, DType::F64));
  Tensor x = randn({2, 5, 4}, g, DType::F64);
  expect_close(lin.forward(x), naive_linear(vec(x), 10, lin.weight(), lin.bias()));
  // F32, no bias, on a transposed (non-contiguous) input
  Linear l32(4, 6, false, g);
  Tensor xt = transpose(randn({4, 7}, g), 0, 1);
  expect_close(l32.forward(xt), naive_linear(vec(xt), 7, l32.weight()), 1e-5);
  EXPECT_THROW(l32.forward(randn({2, 5}, g)), Error);
}

TEST(NnEmbedding, ForwardGathersRows) {
  Generator g(3);
  Embedding e(5, 3, g, kF64);
  Tensor ids = from_vector<int32_t>({4, 0, 4, 2}, {2, 2});
  std::vector<double> E = vec(e.weight()), want;
  for (int32_t i : {4, 0, 4, 2})
    for (int j = 0; j < 3; ++j) want.push_back(E[i * 3 + j]);
  Tensor y = e.forward(ids);
  EXPECT_EQ(y.shape(), (Shape{2, 2, 3}));
  expect_close(y, want);
  EXPECT_THROW(e.forward(zeros({2})), Error);
}

TEST(NnRMSNorm, ForwardMatchesLoop) {
  Generator g(4);
  RMSNorm n(6, 1e-6, kF64);
  copy_(n.weight(), randn({6}, g, DType::F64));
  Tensor x = randn({3, 6}, g, DType::F64);
  std::vector<double> X = vec(x), W = vec(n.weight()), want(18);
  for (int r = 0; r < 3; ++r) {
    double ms = 0;
    for (int j = 0; j < 6; ++j) ms += X[r * 6 + j] * X[r * 6 + j] / 6;
    for (int j = 0; j < 6; ++j) want[r * 6 + j] = W[j] * X[r * 6 + j] / std::sqrt(ms + 1e-6);
  }
  expect_close(n.forward(x), want);
}

TEST(NnLayerNorm, ForwardMatchesLoop) {
  Generator g(5);
  LayerNorm n(5, 1e-5, true, kF64);
  copy_(n.weight(), randn({5}, g, DType::F64));
  copy_(n.bias(), randn({5}, g, DType::F64));
  Tensor x = randn({4, 5}, g, DType::F64);
  std::vector<double> X = vec(x), W = vec(n.weight()), B = vec(n.bias()), want(20);
  for (int r = 0; r < 4; ++r) {
    double mu = 0, var = 0;
    for (int j = 0; j < 5; ++j) mu += X[r * 5 + j] / 5;
    for (int j = 0; j < 5; ++j) var += (X[r * 5 + j] - mu) * (X[r * 5 + j] - mu) / 5;
    for (int j = 0; j < 5; ++j)
      want[r * 5 + j] = W[j] * (X[r * 5 + j] - mu) / std::sqrt(var + 1e-5) + B[j];
  }
  expect_close(n.forward(x), want);
  LayerNorm nb(5, 1e-5, false, kF64);
  EXPECT_EQ(nb.named_parameters().size(), 1u);
}

TEST(NnRope, ForwardMatchesCosSinLoop) {
  Generator g(6);
  const int64_t B = 2, H = 3, T = 4, hd = 6;
  RotaryEmbedding rope(hd, 16, 10000.0, DType::F64);
  Tensor x = randn({B, H, T, hd}, g, DType::F64);
  expect_close(rope.forward(x), naive_rope(vec(x), B * H, T, hd, 0));
  expect_close(rope.forward(x, 7), naive_rope(vec(x), B * H, T, hd, 7));
  // a non-contiguous input: [B, T, H, hd] viewed as [B, H, T, hd]
  Tensor xt = transpose(randn({B, T, H, hd}, g, DType::F64), 1, 2);
  expect_close(rope.forward(xt, 3), naive_rope(vec(xt), B * H, T, hd, 3));
  EXPECT_THROW(rope.forward(x, 13), Error);  // positions 13..16 exceed the table of 16
}

TEST(NnRope, ScoresDependOnRelativePositionOnly) {
  Generator g(7);
  RotaryEmbedding rope(8, 32, 10000.0, DType::F64);
  Tensor q = randn({1, 8}, g, DType::F64), k = randn({1, 8}, g, DType::F64);
  auto score = [&](int64_t pq, int64_t pk) {
    return sum(mul(rope.forward(q, pq), rope.forward(k, pk))).item();
  };
  EXPECT_NEAR(score(5, 2), score(20, 17), 1e-12);
  EXPECT_NEAR(score(0, 0), sum(mul(q, k)).item(), 1e-12);
}

TEST(NnMLP, ForwardMatchesLoopForEachActivation) {
  Generator g(8);
  const int64_t d = 4, hidden = 6, R = 5;
  Tensor x = randn({R, d}, g, DType::F64);
  for (Activation act : {Activation::ReLU2, Activation::GELU, Activation::SwiGLU}) {
    MLP mlp(d, hidden, act, g, ParamOptions{DType::F64, Device::cpu(), 0.5});
    EXPECT_EQ(parse_activation(activation_name(act)), act);
    auto params = mlp.named_parameters();
    std::vector<double> u = naive_linear(vec(x), R, params[0].second);  // w1
    if (act == Activation::SwiGLU) {
      ASSERT_EQ(params[2].first, "w3.weight");
      std::vector<double> v = naive_linear(vec(x), R, params[2].second);
      for (size_t i = 0; i < u.size(); ++i) u[i] = u[i] / (1 + std::exp(-u[i])) * v[i];
    } else if (act == Activation::ReLU2) {
      for (double& a : u) a = a > 0 ? a * a : 0.0;
    } else {
      for (double& a : u)
        a = 0.5 * a * (1 + std::tanh(std::sqrt(2 / M_PI) * (a + 0.044715 * a * a * a)));
    }
    expect_close(mlp.forward(x), naive_linear(u, R, params[1].second), 1e-9);
  }
  EXPECT_THROW(parse_activation("tanh"), Error);
}

// Multi-head (KV = H) and grouped-query (KV < H: query head h reads key/value head h / (H/KV)).
TEST(NnAttention, ForwardMatchesLoopOverBHIJ) {
  for (int64_t KV : {4, 2, 1}) {
    SCOPED_TRACE(fmt::format("kv heads {}", KV));
    Generator g(9);
    const int64_t B = 2, T = 5, d = 16, H = 4, hd = 4;
    auto rope = std::make_shared<const RotaryEmbedding>(hd, 16, 10000.0, DType::F64);
    CausalSelfAttention attn(d, H, rope, g, ParamOptions{DType::F64, Device::cpu(), 0.3}, KV);
    Tensor x = randn({B, T, d}, g, DType::F64);
    auto P = attn.named_parameters();  // wq, wk, wv, wo
    ASSERT_EQ(P[1].second.shape(), (Shape{KV * hd, d}));
    std::vector<double> X = vec(x), q = naive_linear(X, B * T, P[0].second),
                        k = naive_linear(X, B * T, P[1].second),
                        v = naive_linear(X, B * T, P[2].second);
    // [B, T, n, hd] -> [B, n, T, hd], then RoPE on q and k
    auto heads = [&](const std::vector<double>& a, int64_t n) {
      std::vector<double> o(a.size());
      for (int64_t b = 0; b < B; ++b)
        for (int64_t t = 0; t < T; ++t)
          for (int64_t h = 0; h < n; ++h)
            for (int64_t e = 0; e < hd; ++e)
              o[((b * n + h) * T + t) * hd + e] = a[((b * T + t) * n + h) * hd + e];
      return o;
    };
    q = naive_rope(heads(q, H), B * H, T, hd, 0);
    k = naive_rope(heads(k, KV), B * KV, T, hd, 0);
    v = heads(v, KV);
    std::vector<double> y(B * T * d, 0.0);  // [B, T, H·hd]
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < T; ++i) {
          const int64_t kvh = h / (H / KV);
          const double* qi = &q[((b * H + h) * T + i) * hd];
          std::vector<double> s(i + 1);
          double mx = -1e300, z = 0;
          for (int64_t j = 0; j <= i; ++j) {  // causal: keys 0..i
            const double* kj = &k[((b * KV + kvh) * T + j) * hd];
            s[j] = 0;
            for (int64_t e = 0; e < hd; ++e) s[j] += qi[e] * kj[e] / std::sqrt(double(hd));
            mx = std::max(mx, s[j]);
          }
          for (int64_t j = 0; j <= i; ++j) z += s[j] = std::exp(s[j] - mx);
          for (int64_t j = 0; j <= i; ++j)
            for (int64_t e = 0; e < hd; ++e)
              y[(b * T + i) * d + h * hd + e] += s[j] / z * v[((b * KV + kvh) * T + j) * hd + e];
        }
    expect_close(attn.forward(x), naive_linear(y, B * T, P[3].second));
    // Incremental decoding through the cache (which holds the KV heads) gives the same rows.
    KVCache cache;
    Tensor first = attn.forward(slice(x, 1, 0, 3), &cache);
    EXPECT_EQ(cache.k.size(1), KV);
    Tensor rest = attn.forward(slice(x, 1, 3, T), &cache);
    expect_close(concat({first, rest}, 1), vec(attn.forward(x)), 1e-12);
    EXPECT_THROW(attn.forward(randn({B, T, d + 1}, g, DType::F64)), Error);
  }
  Generator g(9);
  auto rope = std::make_shared<const RotaryEmbedding>(2, 16, 10000.0, DType::F64);
  EXPECT_THROW(CausalSelfAttention(8, 3, rope, g), Error);  // 8 is not a multiple of 3
  auto rope4 = std::make_shared<const RotaryEmbedding>(4, 16, 10000.0, DType::F64);
  EXPECT_THROW(CausalSelfAttention(16, 4, rope4, g, {}, 3), Error);  // 3 kv heads for 4
}
