// The mutations of the fuzz engine (mutate_main.cpp): a seeded generator of variants of an input,
// aimed at the loaders' formats (JSON text, the safetensors length prefix). Deterministic for a
// seed, so a CI run can be replayed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace monet::fuzz {

class Mutator {
 public:
  // dict: tokens of the target's format (fuzz.h dictionary()); JSON punctuation is added.
  // length_prefixed: the input starts with an 8-byte little-endian length (safetensors).
  Mutator(uint64_t seed, size_t max_len, std::vector<std::string> dict, bool length_prefixed);

  // x changed by one to four mutations (see mutate_main.cpp's header), cut to max_len.
  std::string mutate(std::string x, const std::vector<std::string>& pool);

  // A uniform integer in [0, n); 0 when n is 0.
  uint64_t below(uint64_t n) { return n == 0 ? 0 : rng_() % n; }

 private:
  size_t pos(const std::string& x) { return static_cast<size_t>(below(x.size() + 1)); }
  void mutate_once(std::string& x, const std::vector<std::string>& pool);
  // A run of digits of x picked at random, as [at, end); false when x has none.
  bool digit_run(const std::string& x, size_t& at, size_t& end);

  std::mt19937_64 rng_;
  size_t max_len_;
  bool length_prefixed_;
  std::vector<std::string> dict_;
};

}  // namespace monet::fuzz
