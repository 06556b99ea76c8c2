#include "nn/attention.h"

#include <cmath>
#include <vector>

#include "core/ops.h"

namespace monet::nn {

CausalSelfAttention::CausalSelfAttention(int64_t d_model, int64_t n_heads,
                                         std::shared_ptr<const RotaryEmbedding> rope,
                                         Generator& gen, const ParamOptions& opt)
    : d_model_(d_model), n_heads_(n_heads), rope_(std::move(rope)) {
  MONET_CHECK(d_model > 0 && n_heads > 0 && d_model % n_heads == 0,
              "CausalSelfAttention: d_model {} must be a positive multiple of n_heads {}", d_model,
              n_heads);
  head_dim_ = d_model / n_heads;
  MONET_CHECK(rope_ != nullptr && rope_->head_dim() == head_dim_,
              "CausalSelfAttention: needs a RotaryEmbedding of head_dim {}", head_dim_);
  wq_ = register_module("wq", std::make_shared<Linear>(d_model, d_model, false, gen, opt));
  wk_ = register_module("wk", std::make_shared<Linear>(d_model, d_model, false, gen, opt));
  wv_ = register_module("wv", std::make_shared<Linear>(d_model, d_model, false, gen, opt));
  wo_ = register_module("wo", std::make_shared<Linear>(d_model, d_model, false, gen, opt));
}

Tensor CausalSelfAttention::forward(const Tensor& x, KVCache* cache) {
  MONET_CHECK(x.dim() == 3 && x.size(2) == d_model_,
              "CausalSelfAttention: input of shape {} must be [B, T, {}]", shape_str(x.shape()),
              d_model_);
  const int64_t B = x.size(0), T = x.size(1), H = n_heads_, hd = head_dim_;
  const int64_t p0 = cache ? cache->length() : 0;
  if (cache && cache->k.defined())
    MONET_CHECK(cache->k.size(0) == B && cache->k.size(1) == H && cache->k.size(3) == hd,
                "CausalSelfAttention: cache of shape {} does not fit input {}",
                shape_str(cache->k.shape()), shape_str(x.shape()));
  // [B, T, d] -> [B, H, T, hd]
  auto heads = [&](const Tensor& t) { return transpose(reshape(t, {B, T, H, hd}), 1, 2); };
  Tensor q = rope_->forward(heads(wq_->forward(x)), p0);
  Tensor k = rope_->forward(heads(wk_->forward(x)), p0);
  Tensor v = heads(wv_->forward(x));
  if (cache) {
    if (cache->k.defined()) {
      k = concat({cache->k, k}, 2);
      v = concat({cache->v, v}, 2);
    }
    cache->k = k;
    cache->v = v;
  }
  // P = softmax(q·kᵀ/√hd) over the keys j ≤ p₀ + i (query i sits at absolute position p₀ + i)
  Tensor p = causal_softmax(matmul(q, transpose(k, 2, 3)), 1.0 / std::sqrt(static_cast<double>(hd)));
  Tensor y = matmul(p, v);                            // [B, H, T, hd]
  y = reshape(transpose(y, 1, 2), {B, T, d_model_});  // [B, T, d]
  return wo_->forward(y);
}

}  // namespace monet::nn
