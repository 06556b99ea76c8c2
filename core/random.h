// The seeded RNG: xoshiro256** seeded through splitmix64, normals by Box–Muller. Same seed, same
// numbers, bit for bit, on one machine. The state is four words and is saved in checkpoints so a
// resumed run draws exactly what the uninterrupted run would have drawn.
#pragma once
#include <array>
#include <cstdint>

#include "core/tensor.h"

namespace monet {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) { seed_(seed); }
  void seed_(uint64_t seed);
  uint64_t next_u64();
  double uniform();   // [0, 1), 53 random bits
  double normal();    // N(0, 1)
  int64_t randint(int64_t n);  // [0, n), unbiased
  std::array<uint64_t, 4> state() const { return s_; }
  void set_state(const std::array<uint64_t, 4>& s) { s_ = s; }

 private:
  std::array<uint64_t, 4> s_{};
};

// The process's default generator (the one piece of global state the library keeps).
Generator& default_generator();
void manual_seed(uint64_t seed);

// Random tensors, filled on the CPU in row-major order and moved to `d`.
Tensor randn(const Shape& s, Generator& g = default_generator(), DType t = DType::F32,
             Device d = Device::cpu());
Tensor rand(const Shape& s, Generator& g = default_generator(), DType t = DType::F32,
            Device d = Device::cpu());
Tensor normal(const Shape& s, double mean, double std, Generator& g = default_generator(),
              DType t = DType::F32, Device d = Device::cpu());
Tensor uniform(const Shape& s, double lo, double hi, Generator& g = default_generator(),
               DType t = DType::F32, Device d = Device::cpu());

}  // namespace monet
