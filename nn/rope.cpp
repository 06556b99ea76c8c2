#include "nn/rope.h"

#include <cmath>
#include <vector>

#include "core/ops.h"

namespace monet::nn {

RotaryEmbedding::RotaryEmbedding(int64_t head_dim, int64_t max_len, double theta, DType dtype)
    : head_dim_(head_dim), max_len_(max_len) {
  MONET_CHECK(head_dim > 0 && head_dim % 2 == 0 && max_len > 0,
              "RotaryEmbedding: head_dim {} must be even and positive, max_len {} positive",
              head_dim, max_len);
  const int64_t half = head_dim / 2;
  // [max_len, half] tables: shape_numel checks the product for overflow before anything is sized.
  std::vector<double> c(static_cast<size_t>(shape_numel({max_len, half}))), s(c.size());
  for (int64_t p = 0; p < max_len; ++p) {
    for (int64_t i = 0; i < half; ++i) {
      // ωᵢ = θ^(−2i/hd)
      const double angle =
          static_cast<double>(p) *
          std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
      c[p * half + i] = std::cos(angle);
      s[p * half + i] = std::sin(angle);
    }
  }
  cos_ = from_vector(c, {max_len, half}).to(dtype);
  sin_ = from_vector(s, {max_len, half}).to(dtype);
}

Tensor RotaryEmbedding::forward(const Tensor& x, int64_t offset) const {
  MONET_CHECK(x.dim() >= 2 && x.shape().back() == head_dim_,
              "RotaryEmbedding: input of shape {} must be [..., T, {}]", shape_str(x.shape()),
              head_dim_);
  const int64_t T = x.size(-2);
  MONET_CHECK(offset >= 0 && offset + T <= max_len_,
              "RotaryEmbedding: positions [{}, {}) exceed the table of {} (input {})", offset,
              offset + T, max_len_, shape_str(x.shape()));
  Tensor c = slice(cos_, 0, offset, offset + T).to(x.dtype()).to(x.device());  // [T, hd/2]
  Tensor s = slice(sin_, 0, offset, offset + T).to(x.dtype()).to(x.device());
  return rotary(x, c, s);  // x₁cos − x₂sin, x₂cos + x₁sin (core/ops/attention.cpp)
}

}  // namespace monet::nn
