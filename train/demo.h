// The core's smoke demo: a two-layer MLP learns XOR-of-signs on 2-D points with plain SGD,
// using nothing but tensors and autodiff. `monet demo` prints its loss falling; a test asserts it.
#pragma once
#include <cstdint>
#include <functional>

namespace monet {

struct DemoResult {
  double first_loss = 0, final_loss = 0, accuracy = 0;
};

// Trains for `steps` full-batch SGD steps; calls `on_step(step, loss)` every step.
DemoResult run_xor_demo(int steps, uint64_t seed, const std::function<void(int, double)>& on_step);

}  // namespace monet
