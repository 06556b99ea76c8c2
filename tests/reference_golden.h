// Golden-file helpers shared by test_reference_*.cpp, the tests of the C++ layers against their
// PyTorch twin (eval/reference/monet_ref.py, written from the papers).
//
// eval/reference/gen_golden.py ran the twin on fixed small cases and stored inputs, weights,
// outputs and gradients in tests/data/ref_*.safetensors (inputs and weights are float32 values,
// outputs and gradients were computed in float64). Each test loads one file, runs the C++
// implementation on the same inputs and weights, in F64 and in F32, and compares every output and
// every gradient tensor by tensor, printing the largest absolute difference of each (as llm.c's
// test_gpt2 does). A tensor passes when max|got − want| ≤ rtol·max|want| + atol:
//   F64: rtol 1e-10 (the same math in double precision: only summation order differs)
//   F32: rtol 1e-5 (float32 rounding; the largest seen is ≈ 5e-7 of the tensor's largest value)
// Integer tensors (chosen experts, kept pairs) must be equal. No PyTorch is needed here: only the
// committed files are read.
#pragma once
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "nn/module.h"
#include "train/safetensors.h"

namespace monet::testing::golden {

inline constexpr double kRtolF64 = 1e-10, kAtolF64 = 1e-13;
inline constexpr double kRtolF32 = 1e-5, kAtolF32 = 1e-7;

// One golden file: named tensors and the string metadata.
class Golden {
 public:
  explicit Golden(const std::string& file) : file_(file) {
    Safetensors st = load_safetensors(std::string(MONET_SOURCE_DIR) + "/tests/data/" + file);
    for (auto& [name, t] : st.tensors) tensors_.emplace(name, t);
    meta_ = st.metadata;
  }
  const std::string& file() const { return file_; }
  bool has(const std::string& name) const { return tensors_.count(name) > 0; }
  const Tensor& raw(const std::string& name) const {
    auto it = tensors_.find(name);
    MONET_CHECK(it != tensors_.end(), "{}: no tensor '{}'", file_, name);
    return it->second;
  }
  // A fresh copy in `dtype` (a new leaf, when `grad`).
  Tensor get(const std::string& name, DType dtype, bool grad = false) const {
    Tensor t = raw(name).to(dtype).contiguous();
    if (t.same(raw(name))) t = add(t, 0.0);  // a copy: the file's tensors stay untouched
    if (grad) t.requires_grad_();
    return t;
  }
  int64_t integer(const std::string& key) const { return std::stoll(meta(key)); }
  double number(const std::string& key) const { return std::stod(meta(key)); }
  const std::string& meta(const std::string& key) const {
    auto it = meta_.find(key);
    MONET_CHECK(it != meta_.end(), "{}: no metadata '{}'", file_, key);
    return it->second;
  }
  std::vector<std::string> names_with_prefix(const std::string& prefix) const {
    std::vector<std::string> out;
    for (const auto& [name, t] : tensors_)
      if (name.rfind(prefix, 0) == 0) out.push_back(name.substr(prefix.size()));
    return out;
  }

 private:
  std::string file_;
  std::map<std::string, Tensor> tensors_;
  Metadata meta_;
};

struct Tol {
  double rtol, atol;
};
inline Tol tol_for(DType t) {
  return t == DType::F64 ? Tol{kRtolF64, kAtolF64} : Tol{kRtolF32, kAtolF32};
}

// Compares one tensor and prints its line of the per-tensor table.
inline void expect_close(const std::string& what, const Tensor& got, const Tensor& want, Tol tol) {
  ASSERT_TRUE(got.defined()) << what << ": no tensor";
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const std::vector<double> a = got.detach().to(DType::F64).contiguous().to_vector<double>();
  const std::vector<double> b = want.to(DType::F64).contiguous().to_vector<double>();
  double diff = 0, scale = 0;
  size_t worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::isnan(a[i] - b[i]) ? INFINITY : std::abs(a[i] - b[i]);
    if (d > diff) {
      diff = d;
      worst = i;
    }
    scale = std::max(scale, std::abs(b[i]));
  }
  ASSERT_TRUE(std::isfinite(scale)) << what << ": the golden tensor is not finite";
  const double bound = tol.rtol * scale + tol.atol;
  fmt::print("  {:<44} max|diff| {:9.3e}  max|ref| {:9.3e}  {}\n", what, diff, scale,
             diff <= bound ? "ok" : "FAIL");
  EXPECT_LE(diff, bound) << what << ": element " << worst << " is " << a[worst] << ", the twin has "
                         << b[worst] << " (tolerance " << bound << ")";
}

inline Tensor grad_or_zeros(const Tensor& p) {
  return p.grad().defined() ? p.grad() : zeros_like(p);
}

// Copies the golden tensors into a module's parameters and buffers of the same names. Every
// parameter must have a golden value and a golden gradient "grad.<name>".
inline void load_into(nn::Module& m, const Golden& g, const std::string& prefix = "") {
  NoGradGuard ng;
  for (const auto& list : {m.named_parameters(), m.named_buffers()})
    for (const auto& [name, t] : list) {
      ASSERT_TRUE(g.has(prefix + name)) << g.file() << " has no '" << prefix + name << "'";
      const Tensor& src = g.raw(prefix + name);
      ASSERT_EQ(src.shape(), t.shape()) << name;
      copy_(t, src.to(t.dtype()));
    }
}

// Every parameter's gradient against "grad.<prefix><name>", and the two name sets must be equal
// (so no parameter is left uncompared and no golden gradient is unmatched).
inline void expect_param_grads(const nn::Module& m, const Golden& g, Tol tol,
                               const std::string& prefix = "",
                               const std::set<std::string>& extra = {"x"}) {
  std::set<std::string> golden;
  for (const auto& n : g.names_with_prefix("grad." + prefix))
    if (!extra.count(n)) golden.insert(n);
  std::set<std::string> mine;
  for (const auto& [name, p] : m.named_parameters()) {
    mine.insert(name);
    ASSERT_TRUE(g.has("grad." + prefix + name)) << "no golden gradient for " << name;
    expect_close("grad." + name, grad_or_zeros(p), g.raw("grad." + prefix + name), tol);
  }
  EXPECT_EQ(mine, golden) << "parameter names differ from the twin's";
}

// ---- integer tensors (chosen experts, kept pairs): equal, element by element ----------------

inline void expect_equal_ints(const std::string& what, const Tensor& got, const Tensor& want) {
  ASSERT_TRUE(got.defined()) << what << ": no tensor";
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const std::vector<int32_t> a = got.to(DType::I32).contiguous().to_vector<int32_t>();
  const std::vector<int32_t> b = want.to(DType::I32).contiguous().to_vector<int32_t>();
  int64_t mismatches = 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i] != b[i] && ++mismatches <= 5)
      ADD_FAILURE() << what << ": flat index " << i << " is " << a[i] << " in C++, " << b[i]
                    << " in the twin";
  fmt::print("  {:<44} {} values, {} mismatches\n", what, a.size(), mismatches);
  EXPECT_EQ(mismatches, 0) << what;
}

}  // namespace monet::testing::golden
