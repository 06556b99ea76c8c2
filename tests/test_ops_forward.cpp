// Forward values of the core ops against obvious naive loops written here, in float32 as used in
// training: matmul in every transpose case, softmax (including huge logits), norms, cross-entropy.
#include <gtest/gtest.h>

#include <array>
#include <cmath>

#include "core/ops.h"
#include "core/random.h"

using namespace monet;

namespace {

// Element (i, j) of a 2-D tensor read through its strides (the test's own indexing).
double at(const Tensor& t, int64_t i, int64_t j) {
  const float* base = static_cast<const float*>(t.storage()->data());
  return base[t.offset() + i * t.strides()[0] + j * t.strides()[1]];
}

void expect_close(const std::vector<float>& got, const std::vector<double>& want, double tol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], tol * (1 + std::abs(want[i]))) << "element " << i;
}

// A [1, 1, R, C] slice seen as [R, C] with its own strides.
Tensor make_2d(const Tensor& t) {
  return t.reshape({t.size(2), t.size(3)});
}

std::vector<double> naive_matmul(const Tensor& a, const Tensor& b) {
  const int64_t M = a.shape()[0], K = a.shape()[1], N = b.shape()[1];
  std::vector<double> c(M * N, 0.0);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j)
      for (int64_t k = 0; k < K; ++k) c[i * N + j] += at(a, i, k) * at(b, k, j);
  return c;
}

}  // namespace

TEST(OpForward, MatmulEveryTransposeCase) {
  Generator g(7);
  // A small product and one large enough for OpenBLAS's blocked kernels.
  for (auto [M, K, N] : {std::array<int64_t, 3>{5, 7, 3}, std::array<int64_t, 3>{40, 37, 33}}) {
    Tensor a = randn({M, K}, g), at_ = randn({K, M}, g), b = randn({K, N}, g),
           bt = randn({N, K}, g);
    struct {
      Tensor x, y;
    } cases[] = {{a, b},
                 {at_.transpose(0, 1), b},
                 {a, bt.transpose(0, 1)},
                 {at_.transpose(0, 1), bt.transpose(0, 1)}};
    for (auto& c : cases)
      expect_close(matmul(c.x, c.y).to_vector<float>(), naive_matmul(c.x, c.y), 1e-5);
  }
}

TEST(OpForward, MatmulManySmallProductsMatchEachOnItsOwn) {
  Generator g(9);  // MONET's head mixing: [B·T] products of [H, √N]·[√N, m/2], one per token
  Tensor gates = randn({6, 5, 4, 16}, g), acts = randn({6, 5, 16, 3}, g);
  Tensor gt = transpose(randn({6, 5, 16, 4}, g), -1, -2);  // a transposed batch operand
  for (const Tensor& lhs : {gates, gt}) {
    Tensor c = matmul(lhs, acts);
    ASSERT_EQ(c.shape(), (Shape{6, 5, 4, 3}));
    for (int64_t i = 0; i < 6; ++i)
      for (int64_t j = 0; j < 5; ++j) {
        auto pick = [&](const Tensor& t) { return t.slice(0, i, i + 1).slice(1, j, j + 1); };
        const Tensor l = pick(lhs), r = pick(acts);
        expect_close(pick(c).reshape({4, 3}).to_vector<float>(),
                     naive_matmul(make_2d(l), make_2d(r)), 1e-5);
      }
  }
}

TEST(OpForward, MatmulBatchedAndSlicedOperands) {
  Generator g(8);
  Tensor a = randn({3, 4, 6}, g), w = randn({6, 2}, g);
  Tensor c = matmul(a, w);  // shared weight folds the batch into the rows
  ASSERT_EQ(c.shape(), (Shape{3, 4, 2}));
  Tensor wide = randn({4, 9}, g);
  Tensor cols = wide.slice(1, 2, 8);  // row stride 9, unit column stride: no copy needed
  for (int64_t bidx = 0; bidx < 3; ++bidx) {
    Tensor ab = a.slice(0, bidx, bidx + 1).reshape({4, 6});
    expect_close(c.slice(0, bidx, bidx + 1).reshape({4, 2}).to_vector<float>(), naive_matmul(ab, w),
                 1e-5);
  }
  Tensor x = randn({2, 4}, g);
  expect_close(matmul(x, cols).to_vector<float>(), naive_matmul(x, cols), 1e-5);
}

TEST(OpForward, SoftmaxMatchesNaiveAndSurvivesHugeLogits) {
  std::vector<float> v{1000.f, 1001.f, 999.f, -5.f, 0.f, 5.f};
  Tensor x = from_vector(v, {2, 3});
  std::vector<float> y = softmax(x, -1).to_vector<float>();
  for (int r = 0; r < 2; ++r) {
    double mx = -1e30, s = 0;
    for (int j = 0; j < 3; ++j) mx = std::max<double>(mx, v[r * 3 + j]);
    for (int j = 0; j < 3; ++j) s += std::exp(v[r * 3 + j] - mx);
    for (int j = 0; j < 3; ++j) {
      EXPECT_NEAR(y[r * 3 + j], std::exp(v[r * 3 + j] - mx) / s, 1e-6);
      EXPECT_TRUE(std::isfinite(y[r * 3 + j]));
    }
  }
  std::vector<float> ls = log_softmax(x, -1).to_vector<float>();
  EXPECT_NEAR(ls[1], -std::log(1 + std::exp(-1.0) + std::exp(-2.0)), 1e-5);
}

TEST(OpForward, RmsNormAndLayerNormMatchNaive) {
  Generator g(9);
  Tensor x = randn({3, 8}, g), w = randn({8}, g), b = randn({8}, g);
  std::vector<float> xs = x.to_vector<float>(), ws = w.to_vector<float>(),
                     bs = b.to_vector<float>();
  std::vector<double> rms(24), ln(24);
  for (int r = 0; r < 3; ++r) {
    double ss = 0, mu = 0, var = 0;
    for (int j = 0; j < 8; ++j) ss += xs[r * 8 + j] * xs[r * 8 + j], mu += xs[r * 8 + j];
    mu /= 8;
    for (int j = 0; j < 8; ++j) var += (xs[r * 8 + j] - mu) * (xs[r * 8 + j] - mu);
    var /= 8;
    for (int j = 0; j < 8; ++j) {
      rms[r * 8 + j] = xs[r * 8 + j] / std::sqrt(ss / 8 + 1e-6) * ws[j];
      ln[r * 8 + j] = (xs[r * 8 + j] - mu) / std::sqrt(var + 1e-5) * ws[j] + bs[j];
    }
  }
  expect_close(rms_norm(x, w, 1e-6).to_vector<float>(), rms, 1e-5);
  expect_close(layer_norm(x, w, b, 1e-5).to_vector<float>(), ln, 1e-5);
}

TEST(OpForward, CrossEntropyMatchesNaiveAndIgnoresIndex) {
  std::vector<float> v{2.f, 0.5f, -1.f, 0.f, 3.f, 1.f, 10.f, 10.f, 10.f};
  Tensor logits = from_vector(v, {3, 3});
  Tensor t = from_vector<int32_t>({0, 1, -100}, {3});
  double want = 0;
  for (int r = 0; r < 2; ++r) {
    double s = 0;
    for (int j = 0; j < 3; ++j) s += std::exp(v[r * 3 + j]);
    want += std::log(s) - v[r * 3 + (r == 0 ? 0 : 1)];
  }
  EXPECT_NEAR(cross_entropy(logits, t).item(), want / 2, 1e-6);
  EXPECT_THROW(cross_entropy(logits, from_vector<int32_t>({0, 3, 1}, {3})), Error);
}

TEST(OpForward, BatchNormUsesBatchStatsInTrainingAndRunningStatsInEval) {
  Tensor x = from_vector<float>({1, 10, 3, 20, 5, 30}, {3, 2});  // channel axis 1
  Tensor rm = zeros({2}), rv = ones({2});
  std::vector<float> y = batch_norm(x, 1, rm, rv, true, 0.5).to_vector<float>();
  // channel 0: mean 3, biased var 8/3
  EXPECT_NEAR(y[0], (1 - 3) / std::sqrt(8.0 / 3 + 1e-5), 1e-5);
  // running stats: 0.5·0 + 0.5·3 and 0.5·1 + 0.5·(unbiased var 4)
  EXPECT_NEAR(rm.to_vector<float>()[0], 1.5, 1e-6);
  EXPECT_NEAR(rv.to_vector<float>()[0], 2.5, 1e-6);
  std::vector<float> e = batch_norm(x, 1, rm, rv, false).to_vector<float>();
  EXPECT_NEAR(e[0], (1 - 1.5) / std::sqrt(2.5 + 1e-5), 1e-5);
}

TEST(OpForward, TopkIsSortedWithFirstIndexOnTies) {
  Tensor x = from_vector<float>({3, 1, 3, 7, 0}, {1, 5});
  auto [v, i] = topk(x, 3);
  EXPECT_EQ(v.to_vector<float>(), (std::vector<float>{7, 3, 3}));
  EXPECT_EQ(i.to_vector<int32_t>(), (std::vector<int32_t>{3, 0, 2}));
}

TEST(OpForward, GatherScatterIndexSelectMatchNaive) {
  Tensor a = from_vector<float>({0, 1, 2, 3, 4, 5}, {2, 3});
  Tensor ix = from_vector<int32_t>({2, 2, 0, 1}, {2, 2});
  EXPECT_EQ(gather(a, 1, ix).to_vector<float>(), (std::vector<float>{2, 2, 3, 4}));
  Tensor s = scatter_add(zeros({2, 3}), 1, ix, ones({2, 2}));
  EXPECT_EQ(s.to_vector<float>(), (std::vector<float>{0, 0, 2, 1, 1, 0}));
  Tensor rows = index_select(a, 0, from_vector<int32_t>({1, 1, 0}, {3}));
  EXPECT_EQ(rows.to_vector<float>(), (std::vector<float>{3, 4, 5, 3, 4, 5, 0, 1, 2}));
  EXPECT_THROW(index_select(a, 0, from_vector<int32_t>({2}, {1})), Error);
}

TEST(OpForward, NormalQuantileMatchesReferenceValues) {
  // Reference values: Python's statistics.NormalDist().inv_cdf.
  EXPECT_NEAR(normal_icdf(0.975), 1.9599639845400536, 1e-12);
  EXPECT_NEAR(normal_icdf(1 - 8.0 / 512), 2.1538746940614555, 1e-12);  // MONET, k=8, √N=512
  EXPECT_NEAR(normal_icdf(1e-10), -6.361340902404056, 1e-9);
  EXPECT_NEAR(normal_icdf(0.02), -2.0537489106318225, 1e-12);
  EXPECT_NEAR(normal_icdf(0.99999), 4.26489079392384, 1e-10);
  EXPECT_EQ(normal_icdf(0.5), 0.0);
  EXPECT_THROW(normal_icdf(1.0), Error);
  for (double p : {0.001, 0.3, 0.9}) EXPECT_NEAR(normal_cdf(normal_icdf(p)), p, 1e-14);
}

TEST(OpForward, FloatAndDoubleKernelsAgree) {
  Generator g(11);
  Tensor x = randn({4, 6}, g);
  Tensor w = randn({6, 3}, g);
  auto f = [](const Tensor& a, const Tensor& b) { return softmax(gelu(matmul(a, b)), -1); };
  std::vector<float> lo = f(x, w).to_vector<float>();
  std::vector<double> hi = f(x.to(DType::F64), w.to(DType::F64)).to_vector<double>();
  expect_close(lo, hi, 1e-5);
}

TEST(OpsForward, RotaryIsTheRotateHalfFormula) {
  Generator g(3);
  Tensor x = normal({2, 5, 3, 8}, 0, 1, g, DType::F64), c = normal({5, 4}, 0, 1, g, DType::F64),
         s = normal({5, 4}, 0, 1, g, DType::F64);
  Tensor xv = transpose(x, 1, 2);  // [2, 3, 5, 8], strided like the attention heads
  Tensor y = rotary(xv, c, s);
  ASSERT_TRUE(y.is_contiguous());
  const std::vector<double> out = y.to_vector<double>(), xs = xv.contiguous().to_vector<double>(),
                            cs = c.to_vector<double>(), sn = s.to_vector<double>();
  for (int64_t r = 0; r < 2 * 3 * 5; ++r) {
    const int64_t t = r % 5;
    for (int64_t i = 0; i < 4; ++i) {
      const double x1 = xs[r * 8 + i], x2 = xs[r * 8 + 4 + i], ci = cs[t * 4 + i],
                   si = sn[t * 4 + i];
      EXPECT_NEAR(out[r * 8 + i], x1 * ci - x2 * si, 1e-15);
      EXPECT_NEAR(out[r * 8 + 4 + i], x2 * ci + x1 * si, 1e-15);
    }
  }
  EXPECT_THROW(rotary(xv, c, slice(s, 0, 0, 4)), Error);  // table of the wrong length
}
