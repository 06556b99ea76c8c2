// The MONET router and its auxiliary losses: the adaptive routing keeps ≈ k of √N sub-experts and
// always one; its fused CPU pass equals the rule written out with separate ops; BatchNorm uses the
// batch statistics in training and the running ones in eval; the masked softmax refuses a row that
// keeps nothing; and L_unif and L_amb take their known values on hand-made scores.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "core/ops.h"
#include "core/random.h"
#include "kernel_paths.h"
#include "monet/aux_loss.h"
#include "monet/router.h"

using namespace monet;
using namespace monet::moe;
using monet::testing::for_each_kernel_path;

TEST(MonetRouter, KeepsAboutKOfSqrtNAndAlwaysOne) {
  for_each_kernel_path([&] {
    const int64_t sqrt_n = 64, k = 8, tokens = 4096;
    Generator g(5);
    Tensor z = randn({8, tokens / 8, 4, sqrt_n}, g);
    Tensor rm = zeros({4}), rv = ones({4});
    Tensor p = adaptive_routing(z, rm, rv, true, routing_threshold(k, sqrt_n));
    std::vector<float> v = p.to_vector<float>();
    int64_t kept = 0, rows = static_cast<int64_t>(v.size()) / sqrt_n, min_row = sqrt_n;
    for (int64_t r = 0; r < rows; ++r) {
      int64_t row_kept = 0;
      double s = 0;
      for (int64_t i = 0; i < sqrt_n; ++i)
        row_kept += v[r * sqrt_n + i] > 0, s += v[r * sqrt_n + i];
      kept += row_kept;
      min_row = std::min(min_row, row_kept);
      ASSERT_NEAR(s, 1.0, 1e-5);
    }
    // On Gaussian logits, P(n ≥ σ) = k/√N exactly, so the mean kept per (token, head) is k plus the
    // rows where no logit passes σ and the maximum alone is kept (P = (1 − k/√N)^√N ≈ 2e-4). The
    // batch estimate of the statistics adds noise: ±0.3 is several standard errors at 16k rows.
    EXPECT_NEAR(static_cast<double>(kept) / static_cast<double>(rows), 8.0, 0.3);
    EXPECT_GE(min_row, 1);
  });
}

// The router's fused CPU pass against the rule written out with separate ops: BatchNorm, the
// per-row maximum, τ = min(max n, σ), the mask and a softmax of the masked raw logits.
TEST(MonetRouter, FusedPassEqualsTheComposedRule) {
  for (DType dt : {DType::F32, DType::F64}) {
    for (bool training : {true, false}) {
      Generator g(11);
      Tensor z = add(mul(randn({3, 40, 3, 32}, g), 2.0), 0.5).to(dt);
      const double sigma = routing_threshold(5, 32);
      Tensor rm = full({3}, 0.3, dt), rv = full({3}, 2.5, dt);
      auto fresh = [](const Tensor& t) {  // a copy with its own storage
        Tensor c = empty(t.shape(), t.dtype());
        copy_(c, t);
        return c;
      };
      Tensor rm_ref = fresh(rm), rv_ref = fresh(rv);
      Tensor zl = fresh(z).requires_grad_(), zr = fresh(z).requires_grad_();
      Tensor p = adaptive_routing(zl, rm, rv, training, sigma);
      Tensor n = batch_norm(zr.detach(), 2, rm_ref, rv_ref, training);
      Tensor tau = max(n, -1, true).first;
      tau = where(greater(tau, full({}, sigma, dt)), full({}, sigma, dt), tau);
      Tensor ref = softmax(where(greater_equal(n, tau), zr, full({}, -1e10, dt)), -1);
      const double tol = dt == DType::F32 ? 1e-6 : 1e-12;
      std::vector<double> a = p.to(DType::F64).to_vector<double>(),
                          b = ref.to(DType::F64).to_vector<double>();
      ASSERT_EQ(a.size(), b.size());
      // The two compute the statistics with different rounding, so a logit within rounding of σ
      // may be kept by one and not the other: such rows are skipped.
      const std::vector<double> nv = n.to(DType::F64).to_vector<double>();
      const size_t S = 32;
      std::vector<bool> boundary(a.size() / S, false);
      for (size_t i = 0; i < nv.size(); ++i)
        if (std::abs(nv[i] - sigma) < 1e-4) boundary[i / S] = true;
      int64_t compared = 0;
      for (size_t i = 0; i < a.size(); ++i) {
        if (boundary[i / S]) continue;
        ++compared;
        ASSERT_NEAR(a[i], b[i], tol) << "entry " << i;
      }
      EXPECT_GT(compared, static_cast<int64_t>(a.size() * 9 / 10));
      std::vector<double> m1 = rm.to(DType::F64).to_vector<double>(),
                          m2 = rm_ref.to(DType::F64).to_vector<double>(),
                          v1 = rv.to(DType::F64).to_vector<double>(),
                          v2 = rv_ref.to(DType::F64).to_vector<double>();
      for (size_t h = 0; h < 3; ++h) {
        EXPECT_NEAR(m1[h], m2[h], tol) << "running mean, head " << h;
        EXPECT_NEAR(v1[h], v2[h], 10 * tol) << "running var, head " << h;
      }
      // Gradients reach z only through the kept entries, as through softmax(where(...)).
      Tensor w = randn(z.shape(), g).to(dt);
      sum(mul(p, w)).backward();
      sum(mul(ref, w)).backward();
      std::vector<double> ga = zl.grad().to(DType::F64).to_vector<double>(),
                          gb = zr.grad().to(DType::F64).to_vector<double>();
      for (size_t i = 0; i < ga.size(); ++i) {
        if (!boundary[i / S]) {
          ASSERT_NEAR(ga[i], gb[i], 10 * tol) << "grad " << i;
        }
      }
    }
  }
}

TEST(MaskedSoftmax, RefusesARowThatKeepsNothing) {
  for_each_kernel_path([&] {
    Tensor x = zeros({2, 3}), keep = from_vector<float>({1, 0, 0, 0, 0, 0}, {2, 3});
    try {
      masked_softmax(x, keep);
      FAIL() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("row 1"), std::string::npos) << e.what();
    }
    EXPECT_THROW(masked_softmax(x, zeros({3, 2})), Error);
  });
}

TEST(MonetRouter, TrainUsesBatchStatisticsEvalUsesRunningOnes) {
  for_each_kernel_path([&] {
    Generator g(6);
    Tensor z = add(mul(randn({2, 64, 2, 16}, g), 3.0), 5.0);  // far from N(0, 1)
    Tensor rm = zeros({2}), rv = ones({2});
    const double sigma = routing_threshold(4, 16);
    adaptive_routing(z, rm, rv, true, sigma);
    std::vector<float> m = rm.to_vector<float>();
    EXPECT_NEAR(m[0], 0.5, 0.1);  // 0.9·0 + 0.1·≈5: the running mean moved towards the batch mean
    // In eval with the initial statistics (mean 0, var 1) every logit ≈ 5 > σ: the mask keeps
    // everything the max does not exclude — with τ = min(max n, σ) = σ, all logits above σ stay.
    Tensor rm0 = zeros({2}), rv0 = ones({2});
    std::vector<float> e = adaptive_routing(z, rm0, rv0, false, sigma).to_vector<float>();
    int64_t zeros_in_eval = 0;
    for (float x : e) zeros_in_eval += x == 0.0f;
    std::vector<float> t = adaptive_routing(z, rm0, rv0, true, sigma).to_vector<float>();
    int64_t zeros_in_train = 0;
    for (float x : t) zeros_in_train += x == 0.0f;
    EXPECT_LT(zeros_in_eval, zeros_in_train);
    // Eval did not touch the statistics; the one training call on them moved them as the first did.
    EXPECT_EQ(rm0.to_vector<float>(), m);
  });
}

TEST(MonetAuxLoss, UniformityIsLogSqrtNAtAUniformSplitAndAmbiguityZeroWhenOneHot) {
  Tensor uni = full({2, 3, 2, 8}, 1.0 / 8, DType::F64);
  EXPECT_NEAR(uniformity_loss({uni, uni}).item(), std::log(8.0), 1e-12);
  EXPECT_NEAR(ambiguity_loss({uni, uni}).item(), 1 - 1.0 / 8, 1e-12);
  Tensor hot = zeros({1, 1, 2, 8}, DType::F64);
  copy_(slice(hot, 3, 0, 1), ones({1, 1, 2, 1}, DType::F64));
  EXPECT_NEAR(ambiguity_loss({hot, hot}).item(), 0.0, 1e-12);
  EXPECT_TRUE(std::isfinite(uniformity_loss({hot, hot}).item()));  // unused experts: clamped log
  EXPECT_GT(uniformity_loss({hot, hot}).item(), std::log(8.0));
}
