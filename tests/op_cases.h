// One table of op cases for two suites, in the style of ggml's test-backend-ops:
//   test_ops_grad.cpp     F64 on the CPU, autodiff against central finite differences
//                         (tests/gradcheck.h);
//   test_cuda_parity.cpp  F32 forward and backward on CUDA against the CPU, compared by normalised
//                         mean squared error (skipped without a device).
// Adding an op means adding its cases here once. Cases cover broadcasting, non-contiguous views
// (transposes, slices, expands), size-1 and empty axes.
#pragma once
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "gradcheck.h"

namespace monet::testing {

// The suites a case runs in, as bit flags.
enum Suite : unsigned {
  kGradcheck = 1u << 0,
  kParity = 1u << 1,
  kBothSuites = kGradcheck | kParity,
};

// Parity thresholds on nmse(cuda, cpu) = Σ (cuda − cpu)² / Σ cpu². Both sides are float32 and
// differ only in summation order and in the libm of each side, so a correct kernel lands near
// 1e-13:
//   kDefault          arithmetic, matmul, reductions, norms, indexing, shape ops
//   kTranscendental   exp/log/tanh-heavy ops (exp, gelu, silu, sigmoid, softplus, softmax family,
//                     loss, attention)
//   kExact            index outputs (max / top-k indices, comparisons) and exact casts: identical
inline constexpr double kDefault = 1e-7, kTranscendental = 1e-6, kExact = 0.0;

struct OpCase {
  // The gtest parameter name in both suites (OpGrad/..., CudaParity/...): letters, digits and _.
  std::string name;
  // The op under test. Inputs arrive as leaves of one floating dtype on one device (F64 on the CPU
  // for the gradcheck, F32 on the CPU and on CUDA for the parity), so `f` builds every constant
  // (index tensors, masks, tables, zeros) in the dtype and on the device of x[0].
  Fn f;
  std::vector<Shape> shapes;   // one uniform random input per shape
  double lo = -1.0, hi = 1.0;  // input range: kept away from kinks and poles where the op has them
  double parity_nmse = kDefault;  // the parity threshold, for the output and each input gradient
  // False for outputs without a gradient (comparisons, indices, integer round trips): the parity
  // compares the forward only, and the gradcheck cannot run the case.
  bool differentiable = true;
  unsigned suites = kBothSuites;
  std::string why;  // why the case runs in one suite only (required then, empty otherwise)
  GradcheckOptions gradcheck = {};  // per-case step and tolerances of the finite differences
};

// Every case, in table order; names are unique.
const std::vector<OpCase>& op_cases();
// The cases one suite runs.
std::vector<OpCase> op_cases_for(Suite suite);

// gtest prints parameters with PrintTo and names them with the name generator.
void PrintTo(const OpCase& c, std::ostream* os);
std::string op_case_name(const ::testing::TestParamInfo<OpCase>& info);

// Random int32 indices in [0, n) of shape s on device d, fixed by the seed (so the same on every
// device); with every_ignored = k, every k-th one (from the second) is −100, cross_entropy's
// ignore_index.
Tensor random_ids(const Shape& s, int64_t n, uint64_t seed, Device d, int32_t every_ignored = 0);

// Σ(a − b)² / Σ b², or the plain Σ(a − b)² when b is all zeros: how the suites that compare two
// runs of a case (CUDA against CPU, one GEMM backend against another) measure their difference.
double nmse(const Tensor& a, const Tensor& b);

// One run of a case: its output and input gradients, on the CPU.
struct CaseOutcome {
  Tensor out;
  std::vector<Tensor> grads;  // zeros where no gradient reached the input; none if !differentiable
};
// c.f on device d: the inputs become leaves there, L = Σ f(x) ⊙ w with a fixed random w.
CaseOutcome run_case(const OpCase& c, const std::vector<Tensor>& inputs, Device d);

}  // namespace monet::testing
