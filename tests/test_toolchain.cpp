// The compiler, as configured for Release, builds correct code for a pattern GCC 12's SLP
// vectoriser got wrong under -march=native with AVX-512 ({5, 5, 5, 0} stored as {5, 5, 5, 5}).
// CMakeLists.txt passes -fno-tree-slp-vectorize to GCC < 13; this fails if that is ever dropped.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace {
__attribute__((noinline)) int64_t last(const std::vector<int64_t>& v) { return v[3]; }
}  // namespace

TEST(Toolchain, VectorInitialiserIsNotMiscompiled) {
  const std::vector<int64_t> c{5, 5, 5, 0};
  EXPECT_EQ(last(c), 0);
}
