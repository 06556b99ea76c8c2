#include "core/random.h"

#include <cmath>
#include <vector>

namespace monet {

namespace {
uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
}  // namespace

void Generator::seed_(uint64_t seed) {
  for (uint64_t& w : s_) w = splitmix64(seed);
}

uint64_t Generator::next_u64() {  // xoshiro256** (Blackman & Vigna)
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Generator::uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

double Generator::normal() {
  // Box–Muller, one draw per call (no cached second value: the state stays four words).
  double u1 = uniform(), u2 = uniform();
  if (u1 <= 0) u1 = 0x1.0p-53;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

int64_t Generator::randint(int64_t n) {
  MONET_CHECK(n > 0, "randint: empty range [0, {})", n);
  const uint64_t un = static_cast<uint64_t>(n), limit = UINT64_MAX - UINT64_MAX % un;
  uint64_t r;
  do r = next_u64();
  while (r >= limit);
  return static_cast<int64_t>(r % un);
}

Generator& default_generator() {
  static Generator g(0);
  return g;
}
void manual_seed(uint64_t seed) { default_generator().seed_(seed); }

namespace {
template <class F>
Tensor fill_random(const Shape& s, DType t, Device d, F draw) {
  std::vector<double> v(static_cast<size_t>(shape_numel(s)));
  for (double& x : v) x = draw();
  return from_vector(v, s).to(t).to(d);
}
}  // namespace

Tensor randn(const Shape& s, Generator& g, DType t, Device d) {
  return fill_random(s, t, d, [&] { return g.normal(); });
}
Tensor rand(const Shape& s, Generator& g, DType t, Device d) {
  return fill_random(s, t, d, [&] { return g.uniform(); });
}
Tensor normal(const Shape& s, double mean, double std, Generator& g, DType t, Device d) {
  return fill_random(s, t, d, [&] { return mean + std * g.normal(); });
}
Tensor uniform(const Shape& s, double lo, double hi, Generator& g, DType t, Device d) {
  return fill_random(s, t, d, [&] { return lo + (hi - lo) * g.uniform(); });
}

}  // namespace monet
