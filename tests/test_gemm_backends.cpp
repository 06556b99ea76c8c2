// The GEMM backends and precisions (core/gemm_mode.h) against each other and against naive loops:
//   - cpu::gemm itself in every layout (transposes, padded leading dimensions, β = 0 and 1), each
//     mode against a double-precision loop over the same (rounded, for bf16) inputs;
//   - the bf16 rounding (nearest even, NaN and infinities kept);
//   - the op table (tests/op_cases.h), forward and backward in float32: every built backend runs
//     every parity case (matmul and the fused attention among them) and must agree with OpenBLAS
//     to the case's parity threshold; in bf16 each backend must agree with the f32 result within
//     kBf16Nmse, and oneDNN's bf16 with OpenBLAS's emulation of it (the same rounded inputs)
//     within the f32 threshold;
//   - oneDNN's primitive cache: a repeated product creates no primitive.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "core/cpu/blas.h"
#include "core/gemm_mode.h"
#include "core/ops.h"
#include "core/random.h"
#include "op_cases.h"

using namespace monet;
using monet::testing::CaseOutcome;
using monet::testing::nmse;
using monet::testing::OpCase;

namespace {

// The tolerance of a bf16 result against the f32 one, in nmse. bf16 keeps 8 significant bits, so
// each rounded input is off by up to 2⁻⁹ relative; a sum of K random-signed products of two such
// inputs lands near nmse ≈ 2·(2⁻⁹)²/3 ≈ 2.5e-6, more where the sum cancels. The op cases measure
// 1e-6 to 4e-5, and 1.3e-4 for the single 1×4·4×1 product (matmul_row_vector); 1e-3 leaves room
// for that and still fails on a real error (a wrong layout or a dropped β gives nmse near 1). The
// tight check is the other one: against OpenBLAS's emulation, which multiplies the same rounded
// inputs in f32, a correct bf16 kernel differs only in summation order.
constexpr double kBf16Nmse = 1e-3;

std::vector<GemmMode> every_mode() {
  std::vector<GemmMode> modes;
  for (GemmBackend b : built_gemm_backends())
    for (Precision p : {Precision::F32, Precision::BF16}) modes.push_back({b, p});
  return modes;
}

std::string mode_name(const GemmMode& m) {
  return gemm_backend_name(m.backend) + "/" + precision_name(m.precision);
}

float bf16(float x) {
  return from_bf16(to_bf16(x));
}

}  // namespace

TEST(GemmMode, NamesParseAndTheDefaultIsTheLastBuilt) {
  for (GemmBackend b : built_gemm_backends())
    EXPECT_EQ(parse_gemm_backend(gemm_backend_name(b), "--gemm"), b);
  for (Precision p : {Precision::F32, Precision::BF16})
    EXPECT_EQ(parse_precision(precision_name(p), "run.precision"), p);
  EXPECT_EQ(default_gemm_backend(), built_gemm_backends().back());
  EXPECT_EQ(gemm_mode().backend, default_gemm_backend());
  EXPECT_EQ(gemm_mode().precision, Precision::F32);
  try {
    parse_gemm_backend("mkl", "--gemm");
    ADD_FAILURE() << "no throw";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "--gemm: unknown GEMM backend 'mkl' (choose openblas, onednn)");
  }
  try {
    parse_precision("fp16", "run.precision");
    ADD_FAILURE() << "no throw";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "run.precision: unknown precision 'fp16' (choose fp32, bf16)");
  }
#ifndef MONET_WITH_DNNL
  EXPECT_THROW(parse_gemm_backend("onednn", "--gemm"), Error);
#endif
}

TEST(GemmMode, ScopesNestAndRestore) {
  const GemmMode outer = gemm_mode();
  {
    GemmScope a({GemmBackend::OpenBLAS, Precision::BF16});
    EXPECT_EQ(gemm_mode(), (GemmMode{GemmBackend::OpenBLAS, Precision::BF16}));
    {
      GemmScope b({GemmBackend::OpenBLAS, Precision::F32});
      EXPECT_EQ(gemm_mode().precision, Precision::F32);
    }
    EXPECT_EQ(gemm_mode().precision, Precision::BF16);
  }
  EXPECT_EQ(gemm_mode(), outer);
}

TEST(Bf16, RoundsToNearestEvenAndKeepsSpecials) {
  EXPECT_EQ(to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16(1.0f + std::ldexp(1.0f, -8)), 1.0f);  // a tie: to the even 1.0
  EXPECT_EQ(bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 1.0f + std::ldexp(1.0f, -6));  // a tie: up
  EXPECT_EQ(bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)),
            1.0f + std::ldexp(1.0f, -7));  // past the tie: up
  EXPECT_EQ(bf16(-2.5f), -2.5f);           // exact values stay
  EXPECT_EQ(bf16(std::numeric_limits<float>::infinity()), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(bf16(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_TRUE(std::isnan(bf16(-std::numeric_limits<float>::quiet_NaN())));
  // The largest float rounds up to infinity, as in PyTorch.
  EXPECT_EQ(bf16(std::numeric_limits<float>::max()), std::numeric_limits<float>::infinity());
}

// C = A·B + β·C in each layout against a double loop over the inputs the mode multiplies (rounded
// to bf16 in bf16 mode), so that only the summation order may differ.
TEST(Gemm, EveryModeMatchesANaiveLoopInEveryLayout) {
  Generator g(5);
  const int64_t M = 37, N = 29, K = 70, pad = 3;
  for (const GemmMode& mode : every_mode())
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (float beta : {0.0f, 1.0f}) {
          SCOPED_TRACE(fmt::format("{} ta={} tb={} beta={}", mode_name(mode), ta, tb, beta));
          const int64_t lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
          std::vector<float> a = uniform({(ta ? K : M) * lda}, -1, 1, g).to_vector<float>();
          std::vector<float> b = uniform({(tb ? N : K) * ldb}, -1, 1, g).to_vector<float>();
          std::vector<float> c = uniform({M * ldc}, -1, 1, g).to_vector<float>();
          std::vector<float> c0 = c;
          cpu::gemm(mode, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K,
                    a.data(), lda, b.data(), ldb, beta, c.data(), ldc);
          auto in = [&](float x) { return mode.precision == Precision::BF16 ? bf16(x) : x; };
          double err = 0;
          for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j) {
              double want = beta * c0[i * ldc + j];
              for (int64_t k = 0; k < K; ++k)
                want += double(in(a[ta ? k * lda + i : i * lda + k])) *
                        in(b[tb ? j * ldb + k : k * ldb + j]);
              err = std::max(err, std::abs(c[i * ldc + j] - want));
            }
          EXPECT_LT(err, 1e-4);
          for (int64_t i = 0; i < M; ++i)  // the padding of C is never written
            for (int64_t j = N; j < ldc; ++j) ASSERT_EQ(c[i * ldc + j], c0[i * ldc + j]);
        }
}

class GemmBackends : public ::testing::TestWithParam<OpCase> {};

TEST_P(GemmBackends, EveryModeMatchesOpenBlasF32) {
  const OpCase& c = GetParam();
  Generator g(42);
  std::vector<Tensor> inputs;
  for (const Shape& s : c.shapes) inputs.push_back(uniform(s, c.lo, c.hi, g));
  auto run = [&](GemmMode m) {
    GemmScope scope(m);
    return monet::testing::run_case(c, inputs, Device::cpu());
  };
  const GemmMode ref_mode{GemmBackend::OpenBLAS, Precision::F32};
  const GemmMode emulation{GemmBackend::OpenBLAS, Precision::BF16};
  const CaseOutcome ref = run(ref_mode);
  const CaseOutcome emulated = run(emulation);
  for (const GemmMode& m : every_mode()) {
    // A mode is never compared with itself (that once passed whatever the kernels did): OpenBLAS
    // f32 is the reference, so a build without oneDNN checks its bf16 emulation against it only.
    if (m == ref_mode) continue;
    const CaseOutcome got = run(m);
    const bool bf = m.precision == Precision::BF16;
    // f32 against OpenBLAS f32; bf16 against f32 loosely, and against the emulation tightly.
    auto check = [&](const Tensor& x, const Tensor& want, const Tensor& want_emulated,
                     const std::string& what) {
      EXPECT_LE(nmse(x, want), bf ? std::max(kBf16Nmse, c.parity_nmse) : c.parity_nmse)
          << c.name << " " << mode_name(m) << ": " << what;
      if (bf && !(m == emulation)) {
        EXPECT_LE(nmse(x, want_emulated), std::max(c.parity_nmse, 1e-9))
            << c.name << " " << mode_name(m) << ": " << what << " against the bf16 emulation";
      }
    };
    check(got.out, ref.out, emulated.out, "forward");
    // The products of the matmul and attention cases round their inputs in bf16: the result moves
    // (a bf16 mode that multiplied in f32 would pass the loose check above).
    const bool multiplies =
        c.name.find("matmul") != std::string::npos || c.name.find("attention") != std::string::npos;
    if (bf && multiplies && nmse(ref.out, zeros(ref.out.shape())) > 0) {
      EXPECT_GT(nmse(got.out, ref.out), 0.0) << c.name << " " << mode_name(m) << ": not rounded";
    }
    ASSERT_EQ(got.grads.size(), ref.grads.size());
    for (size_t i = 0; i < ref.grads.size(); ++i)
      check(got.grads[i], ref.grads[i], emulated.grads[i], fmt::format("gradient {}", i));
  }
}

INSTANTIATE_TEST_SUITE_P(Ops, GemmBackends,
                         ::testing::ValuesIn(monet::testing::op_cases_for(monet::testing::kParity)),
                         monet::testing::op_case_name);

#ifdef MONET_WITH_DNNL
TEST(OneDnn, ARepeatedProductCreatesNoPrimitive) {
  Generator g(3);
  Tensor a = randn({64, 48}, g), b = randn({48, 32}, g);
  for (Precision p : {Precision::F32, Precision::BF16}) {
    GemmScope scope({GemmBackend::OneDNN, p});
    (void)matmul(a, b);
    const int64_t made = cpu::onednn_primitives_created();
    for (int i = 0; i < 3; ++i) (void)matmul(a, b);
    EXPECT_EQ(cpu::onednn_primitives_created(), made) << precision_name(p);
    (void)matmul(a, b.slice(1, 0, 31));  // a new shape: one more
    EXPECT_EQ(cpu::onednn_primitives_created(), made + 1) << precision_name(p);
  }
}
#endif
