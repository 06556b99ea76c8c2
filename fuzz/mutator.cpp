#include "fuzz/mutator.h"

#include <cctype>
#include <string>
#include <utility>
#include <vector>

namespace monet::fuzz {

Mutator::Mutator(uint64_t seed, size_t max_len, std::vector<std::string> dict, bool length_prefixed)
    : rng_(seed), max_len_(max_len), length_prefixed_(length_prefixed), dict_(std::move(dict)) {
  for (const char* w : {"{", "}", "[", "]", ",", ":", "\"", "\\u0000", "null", "true", "false",
                        "{}", "[]", "\"\"", "\\"})
    dict_.push_back(w);
}

std::string Mutator::mutate(std::string x, const std::vector<std::string>& pool) {
  const int n = 1 + static_cast<int>(below(4));
  for (int i = 0; i < n; ++i) mutate_once(x, pool);
  if (x.size() > max_len_) x.resize(max_len_);
  return x;
}

bool Mutator::digit_run(const std::string& x, size_t& at, size_t& end) {
  auto digit = [&x](size_t i) { return std::isdigit(static_cast<unsigned char>(x[i])) != 0; };
  std::vector<size_t> starts;
  for (size_t i = 0; i < x.size(); ++i)
    if (digit(i) && (i == 0 || !digit(i - 1))) starts.push_back(i);
  if (starts.empty()) return false;
  at = starts[below(starts.size())];
  end = at;
  while (end < x.size() && digit(end)) ++end;
  return true;
}

void Mutator::mutate_once(std::string& x, const std::vector<std::string>& pool) {
  static const char kBytes[] = {'\0', 1,   0x7f, char(0x80), char(0xff), '"', '\\', '[', ']', '{',
                                '}',  ',', ':',  '-',        '.',        'e', '0',  '9', ' ', '\n'};
  static const char* kNumbers[] = {"0",
                                   "-1",
                                   "1",
                                   "-0",
                                   "1.5",
                                   "1e308",
                                   "-1e308",
                                   "1e-308",
                                   "1e999",
                                   "2147483648",
                                   "4294967296",
                                   "9223372036854775807",
                                   "9223372036854775808",
                                   "-9223372036854775808",
                                   "-9223372036854775809",
                                   "18446744073709551615",
                                   "18446744073709551616",
                                   "4611686018427387904"};
  static const uint64_t kInts[] = {0,          1,          7,           8,
                                   0x7f,       0xff,       0xffff,      0x7fffffff,
                                   0xffffffff, 1ull << 32, 1ull << 62,  0x7fffffffffffffffull,
                                   1ull << 63, ~0ull,      100'000'000, 100'000'001};
  switch (below(length_prefixed_ ? 14 : 13)) {
    case 0:  // flip a bit
      if (!x.empty()) x[below(x.size())] ^= static_cast<char>(1 << below(8));
      break;
    case 1:  // a random byte
      if (!x.empty()) x[below(x.size())] = static_cast<char>(below(256));
      break;
    case 2:  // a special byte
      if (!x.empty()) x[below(x.size())] = kBytes[below(sizeof(kBytes))];
      break;
    case 3: {  // insert random bytes
      std::string s(1 + below(8), '\0');
      for (char& c : s) c = static_cast<char>(below(256));
      x.insert(pos(x), s);
      break;
    }
    case 4: {  // delete a range
      if (x.empty()) break;
      const size_t at = below(x.size());
      x.erase(at, 1 + below(std::min<size_t>(x.size() - at, below(2) ? 4 : x.size())));
      break;
    }
    case 5: {  // copy a range of the input elsewhere in it
      if (x.empty()) break;
      const size_t at = below(x.size());
      const std::string s = x.substr(at, 1 + below(std::min<size_t>(x.size() - at, 64)));
      x.insert(pos(x), s);
      break;
    }
    case 6: {  // splice: a prefix of this input, a suffix of another
      const std::string& o = pool[below(pool.size())];
      x = x.substr(0, pos(x)) + o.substr(below(o.size() + 1));
      break;
    }
    case 7:  // a token of the format
      x.insert(pos(x), dict_[below(dict_.size())]);
      break;
    case 8: {  // a run of digits becomes a boundary number
      size_t at = 0, end = 0;
      if (!digit_run(x, at, end)) break;
      x.replace(at, end - at, kNumbers[below(std::size(kNumbers))]);
      break;
    }
    case 9: {  // a boundary integer, little endian, 1/2/4/8 bytes (or the input's own size)
      const size_t width = size_t{1} << below(4);
      uint64_t v = below(4) == 0 ? x.size() - below(16) : kInts[below(std::size(kInts))];
      if (below(4) == 0) v += below(3) - 1;
      const size_t at = below(2) ? 0 : pos(x);
      if (x.size() < at + width) x.resize(at + width, '\0');
      for (size_t i = 0; i < width; ++i) x[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
      break;
    }
    case 10: {  // a long run of one byte: deep nesting, long strings and numbers
      const char c = below(2) ? "[{\"9 "[below(5)] : kBytes[below(sizeof(kBytes))];
      x.insert(pos(x), std::string(1 + below(below(2) ? 64 : max_len_ / 2), c));  // long: slow
      break;
    }
    case 11:  // truncate
      x.resize(pos(x));
      break;
    case 12: {  // a number becomes the same number in brackets, nested up to thousands deep
      size_t at = 0, end = 0;
      if (!digit_run(x, at, end)) break;
      const size_t depth = 1 + below(below(2) ? 200 : max_len_ / 4);
      x.insert(end, depth, ']');
      x.insert(at, depth, '[');
      break;
    }
    default: {  // the 8-byte length prefix made to end the text at its last '}' (safetensors)
      const size_t close = x.rfind('}');
      if (x.size() < 8 || close == std::string::npos || close < 8) break;
      const uint64_t n = close + 1 - 8;
      for (size_t i = 0; i < 8; ++i) x[i] = static_cast<char>((n >> (8 * i)) & 0xff);
      break;
    }
  }
}

}  // namespace monet::fuzz
