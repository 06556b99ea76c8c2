// Causal multi-head self-attention with RoPE, and the KV cache for incremental decoding.
//
// x [B, T, d] with H heads of hd = d/H:
//   q, k, v = x·W_qᵀ, x·W_kᵀ, x·W_vᵀ              reshaped to [B, H, T, hd]
//   q, k    = rope(q, p₀), rope(k, p₀)              p₀ = tokens already in the cache (0 without)
//   S       = q·kᵀ / √hd                            [B, H, T, T_k], T_k = p₀ + T
//   S[i, j] = −∞ where j > p₀ + i                   (causal: a query sees itself and the past)
//   y       = softmax(S)·v                          [B, H, T, hd] -> [B, T, d]
//   out     = y·W_oᵀ
// No biases (LLaMA). Parameters: wq, wo [d, d]; wk, wv [KV·hd, d].
// Grouped-query attention (Ainslie et al. 2023, as LLaMA 2 and the released MONET models): with
// KV < H key/value heads, query head h reads key/value head h / (H/KV); KV = H is plain multi-head
// attention. The cache holds the KV heads only.
#pragma once
#include <memory>

#include "nn/linear.h"
#include "nn/rope.h"

namespace monet::nn {

// Keys and values of every token seen so far, after RoPE. forward() appends to it. Decoding
// should run under NoGradGuard, or the cache keeps the whole graph of earlier steps alive.
struct KVCache {
  Tensor k, v;  // [B, KV, T_seen, hd]; undefined while empty
  int64_t length() const { return k.defined() ? k.size(2) : 0; }
  void clear() { k = v = Tensor(); }
};

class CausalSelfAttention : public Module {
 public:
  // `rope` may be shared between layers (its tables are constants). n_kv_heads 0 means n_heads.
  CausalSelfAttention(int64_t d_model, int64_t n_heads, std::shared_ptr<const RotaryEmbedding> rope,
                      Generator& gen, const ParamOptions& opt = {}, int64_t n_kv_heads = 0);
  // x [B, T, d] -> [B, T, d]. With a cache, x holds the new tokens only; their positions start at
  // cache->length(), they attend over the cached tokens too, and their k, v are appended.
  Tensor forward(const Tensor& x, KVCache* cache = nullptr);

  int64_t n_heads() const { return n_heads_; }
  int64_t n_kv_heads() const { return n_kv_heads_; }
  int64_t head_dim() const { return head_dim_; }

 private:
  int64_t d_model_, n_heads_, n_kv_heads_, head_dim_;
  std::shared_ptr<const RotaryEmbedding> rope_;
  std::shared_ptr<Linear> wq_, wk_, wv_, wo_;
};

}  // namespace monet::nn
