// Every op of the core, gradient-checked in double precision against central finite differences
// (tests/gradcheck.h), over the gradcheck cases of the op table (tests/op_cases.h) that the CUDA
// parity tests share.
#include <gtest/gtest.h>

#include <set>

#include "core/memory.h"
#include "gradcheck.h"
#include "kernel_paths.h"
#include "op_cases.h"

using namespace monet;
using monet::testing::OpCase;

namespace {

class OpGrad : public ::testing::TestWithParam<OpCase> {};

// Both kernel paths (core/kernel_path.h): the ops with a fused CPU kernel (masked_softmax,
// causal_attention) are checked in their composed form too.
TEST_P(OpGrad, MatchesFiniteDifferences) {
  const OpCase& c = GetParam();
  monet::testing::for_each_kernel_path([&] {
    Generator g(42);
    std::vector<Tensor> in;
    for (const Shape& s : c.shapes) in.push_back(monet::testing::rnd(s, g, c.lo, c.hi));
    monet::testing::expect_gradcheck(c.name, c.f, in, c.gradcheck);
  });
}

// After forward, backward and dropping every tensor, the bytes held return to where they were: a
// backward closure that captured its own output (a reference cycle) would keep the graph alive.
TEST_P(OpGrad, FreesItsGraphAfterBackward) {
  const OpCase& c = GetParam();
  Generator g(43);
  const int64_t before = memory::stats(DeviceType::CPU).current;
  {
    std::vector<Tensor> in;
    for (const Shape& s : c.shapes)
      in.push_back(monet::testing::rnd(s, g, c.lo, c.hi).requires_grad_());
    sum(c.f(in)).backward();
  }
  EXPECT_EQ(memory::stats(DeviceType::CPU).current, before) << c.name << " leaks its graph";
}

INSTANTIATE_TEST_SUITE_P(
    Core, OpGrad, ::testing::ValuesIn(monet::testing::op_cases_for(monet::testing::kGradcheck)),
    monet::testing::op_case_name);

// The table itself: names unique, every case in some suite, a reason wherever a case is left out
// of one, and no gradcheck of a case without a gradient.
TEST(OpCaseTable, EveryCaseRunsSomewhereAndSaysWhyNotEverywhere) {
  std::set<std::string> names;
  for (const OpCase& c : monet::testing::op_cases()) {
    EXPECT_TRUE(names.insert(c.name).second) << c.name << " appears twice";
    EXPECT_NE(c.suites & monet::testing::kBothSuites, 0u) << c.name << " runs in no suite";
    const bool both = (c.suites & monet::testing::kBothSuites) == monet::testing::kBothSuites;
    EXPECT_EQ(c.why.empty(), both)
        << c.name << ": a reason goes with a single suite, and only then";
    if (!c.differentiable) {
      EXPECT_FALSE(c.suites & monet::testing::kGradcheck) << c.name << " has no gradient to check";
    }
  }
}

}  // namespace
