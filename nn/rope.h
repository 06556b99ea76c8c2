// Rotary position embedding (RoPE, Su et al. 2021), in the "rotate half" layout of LLaMA/GPT-NeoX.
//
// For a head vector x ∈ R^hd at absolute position p, split x = [x₁, x₂] into halves of hd/2 and
// rotate each pair (x₁ᵢ, x₂ᵢ) by the angle p·ωᵢ, with ωᵢ = θ^(−2i/hd), θ = 10000:
//   y₁ = x₁ ⊙ cos(pω) − x₂ ⊙ sin(pω)
//   y₂ = x₂ ⊙ cos(pω) + x₁ ⊙ sin(pω)
// so q·k after rotation depends on positions only through their difference. The cos/sin tables
// [max_len, hd/2] are computed once in double and stored in the model's dtype; they are constants,
// not parameters or buffers. Built from slice/mul/concat, so it is differentiable.
#pragma once
#include "core/tensor.h"

namespace monet::nn {

class RotaryEmbedding {
 public:
  RotaryEmbedding(int64_t head_dim, int64_t max_len, double theta = 10000.0,
                  DType dtype = DType::F32);
  // x [..., T, hd] (q or k as [B, H, T, hd]); row t is at absolute position offset + t
  // (offset = the number of tokens already in a KV cache).
  Tensor forward(const Tensor& x, int64_t offset = 0) const;

  int64_t head_dim() const { return head_dim_; }
  int64_t max_len() const { return max_len_; }

 private:
  int64_t head_dim_, max_len_;
  Tensor cos_, sin_;  // [max_len, hd/2]
};

}  // namespace monet::nn
