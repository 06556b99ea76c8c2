// The gradient-check harness: autodiff against central finite differences, in double precision.
//
//   expect_gradcheck("softmax", [](const std::vector<Tensor>& x) { return softmax(x[0], -1); },
//                    {randn({3, 5}, g, DType::F64)});
//
// The inputs are turned into F64 leaves; `f` may build views of them (transpose, slice, expand) to
// test non-contiguous and broadcast cases. The scalar checked is L = Σ f(x) ⊙ w with a fixed random
// w, so every output element matters. For each leaf element,
//   fd = (L(x + h) − L(x − h)) / 2h,  h = 1e-6,
// and the test requires |autodiff − fd| ≤ atol + rtol·max(|autodiff|, |fd|), rtol = 1e-5,
// atol = 1e-7 (the truncation error of the central difference is O(h²) ≈ 1e-12; rounding adds
// about 1e-16/h ≈ 1e-10 relative to L). Integer inputs (indices) are passed through unperturbed.
#pragma once
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/random.h"

namespace monet::testing {

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

struct GradcheckOptions {
  double h = 1e-6, rtol = 1e-5, atol = 1e-7;
  uint64_t seed = 1234;
};

inline void expect_gradcheck(const std::string& name, const Fn& f, const std::vector<Tensor>& in,
                             GradcheckOptions opt = {}) {
  std::vector<Tensor> leaves;
  for (const Tensor& t : in) {
    if (!is_floating(t.dtype())) {
      leaves.push_back(t);
      continue;
    }
    Tensor c = empty(t.shape(), DType::F64);
    copy_(c, t);
    leaves.push_back(c.requires_grad_());
  }
  Tensor out = f(leaves);
  ASSERT_EQ(out.dtype(), DType::F64) << name << ": gradcheck needs an F64 output";
  Generator g(opt.seed);
  Tensor w = randn(out.shape(), g, DType::F64);
  sum(mul(out, w)).backward();

  auto loss_at = [&]() {
    NoGradGuard ng;
    return sum(mul(f(leaves), w)).item();
  };
  for (size_t i = 0; i < leaves.size(); ++i) {
    if (!leaves[i].requires_grad()) continue;
    Tensor grad = leaves[i].grad();  // undefined = no path from this input: the gradient is 0
    if (!grad.defined()) grad = zeros(leaves[i].shape(), DType::F64);
    ASSERT_EQ(grad.shape(), leaves[i].shape()) << name << ": gradient shape of input " << i;
    std::vector<double> ga = grad.to_vector<double>();
    double* x = leaves[i].data<double>();
    int failures = 0;
    for (int64_t j = 0; j < leaves[i].numel() && failures < 5; ++j) {
      const double keep = x[j];
      x[j] = keep + opt.h;
      const double lp = loss_at();
      x[j] = keep - opt.h;
      const double lm = loss_at();
      x[j] = keep;
      const double fd = (lp - lm) / (2 * opt.h);
      const double tol = opt.atol + opt.rtol * std::max(std::abs(fd), std::abs(ga[j]));
      if (std::abs(fd - ga[j]) > tol) {
        ++failures;
        ADD_FAILURE() << name << ": input " << i << " " << shape_str(leaves[i].shape())
                      << " element " << j << ": autodiff " << ga[j] << " vs finite difference "
                      << fd << " (tolerance " << tol << ")";
      }
    }
  }
}

// A random F64 tensor from a fixed generator; `lo`/`hi` bound it away from kinks when needed.
inline Tensor rnd(const Shape& s, Generator& g, double lo = -1.0, double hi = 1.0) {
  return uniform(s, lo, hi, g, DType::F64);
}

}  // namespace monet::testing
