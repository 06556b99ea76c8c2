#include <gtest/gtest.h>

#include "train/demo.h"

// The core end to end: an MLP trained with plain SGD on XOR-of-signs (not linearly separable)
// starts near ln 2 ≈ 0.69 and must get below 0.15 in 400 steps, with ≥ 95% accuracy.
TEST(EndToEnd, MlpLearnsXorWithSgd) {
  monet::DemoResult r = monet::run_xor_demo(400, 0, nullptr);
  EXPECT_GT(r.first_loss, 0.5);
  EXPECT_LT(r.final_loss, 0.15);
  EXPECT_GE(r.accuracy, 0.95);
}
