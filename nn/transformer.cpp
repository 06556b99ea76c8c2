#include "nn/transformer.h"

#include <fmt/format.h>

#include "core/error.h"
#include "core/ops.h"

namespace monet::nn {

void TransformerConfig::validate() const {
  MONET_CHECK(vocab > 0, "TransformerConfig: vocab must be positive, got {}", vocab);
  MONET_CHECK(n_layers > 0, "TransformerConfig: n_layers must be positive, got {}", n_layers);
  MONET_CHECK(context > 0, "TransformerConfig: context must be positive, got {}", context);
  MONET_CHECK(n_heads > 0 && d_model > 0 && d_model % n_heads == 0 && (d_model / n_heads) % 2 == 0,
              "TransformerConfig: d_model {} must split into n_heads {} heads of even size",
              d_model, n_heads);
  MONET_CHECK(n_kv_heads >= 0 && (n_kv_heads == 0 || n_heads % n_kv_heads == 0),
              "TransformerConfig: n_kv_heads {} must divide n_heads {}", n_kv_heads, n_heads);
  MONET_CHECK(mlp_hidden >= 0, "TransformerConfig: mlp_hidden must be ≥ 0, got {}", mlp_hidden);
  MONET_CHECK(is_floating(dtype), "TransformerConfig: dtype must be F32 or F64, got {}",
              dtype_name(dtype));
}

Block::Block(const TransformerConfig& cfg, std::shared_ptr<const RotaryEmbedding> rope,
             std::shared_ptr<FeedForward> ffn, Generator& gen) {
  MONET_CHECK(ffn != nullptr, "Block: no feed-forward layer");
  const ParamOptions opt = cfg.param_options();
  norm1_ = register_module("norm1", std::make_shared<RMSNorm>(cfg.d_model, cfg.norm_eps, opt));
  attn_ = register_module(
      "attn", std::make_shared<CausalSelfAttention>(cfg.d_model, cfg.n_heads, std::move(rope), gen,
                                                    opt, cfg.n_kv_heads));
  norm2_ = register_module("norm2", std::make_shared<RMSNorm>(cfg.d_model, cfg.norm_eps, opt));
  ffn_ = register_module("ffn", std::move(ffn));
}

const char* hook_site_name(HookSite s) {
  return s == HookSite::Mlp ? "mlp" : "resid";
}

HookSite parse_hook_site(const std::string& s) {
  if (s == "mlp") return HookSite::Mlp;
  if (s == "resid") return HookSite::Resid;
  throw Error(fmt::format("hook site must be mlp or resid, got '{}'", s));
}

Tensor Block::forward(const Tensor& h, KVCache* cache) {
  Tensor x = add(h, attn_->forward(norm1_->forward(h), cache));  // h + Attn(RMSNorm₁(h))
  Tensor f = ffn_->forward(norm2_->forward(x));                  // FFN(RMSNorm₂(h))
  if (mlp_hook_) f = mlp_hook_->apply(f);
  Tensor out = add(x, f);
  return resid_hook_ ? resid_hook_->apply(out) : out;
}

void Block::set_hook(HookSite site, std::shared_ptr<ActivationHook> hook) {
  (site == HookSite::Mlp ? mlp_hook_ : resid_hook_) = std::move(hook);
}

const std::shared_ptr<ActivationHook>& Block::hook(HookSite site) const {
  return site == HookSite::Mlp ? mlp_hook_ : resid_hook_;
}

Transformer::Transformer(const TransformerConfig& cfg, Generator& gen, FeedForwardFactory ffn)
    : cfg_(cfg) {
  cfg.validate();
  const ParamOptions opt = cfg.param_options();
  rope_ = std::make_shared<const RotaryEmbedding>(cfg.d_model / cfg.n_heads, cfg.context,
                                                  cfg.rope_theta, cfg.dtype);
  embed_ = register_module("embed", std::make_shared<Embedding>(cfg.vocab, cfg.d_model, gen, opt));
  auto layers = register_module("layers", std::make_shared<ModuleList>());
  for (int layer = 0; layer < cfg.n_layers; ++layer) {
    std::shared_ptr<FeedForward> f =
        ffn ? ffn(layer)
            : std::make_shared<MLP>(cfg.d_model, cfg.mlp_hidden_or_default(), cfg.mlp_activation,
                                    gen, opt);
    MONET_CHECK(f != nullptr, "Transformer: the FFN factory returned null for layer {}", layer);
    blocks_.push_back(std::make_shared<Block>(cfg, rope_, std::move(f), gen));
    layers->push_back(blocks_.back());
  }
  norm_ = register_module("norm", std::make_shared<RMSNorm>(cfg.d_model, cfg.norm_eps, opt));
  lm_head_ =
      register_module("lm_head", std::make_shared<Linear>(cfg.d_model, cfg.vocab, false, gen, opt));
}

Tensor Transformer::run(const Tensor& ids, std::vector<KVCache>* caches, size_t blocks) {
  MONET_CHECK(ids.dim() == 2 && ids.dtype() == DType::I32,
              "Transformer: ids must be I32 [B, T], got {} of shape {}", dtype_name(ids.dtype()),
              shape_str(ids.shape()));
  const int64_t p0 = caches ? (*caches)[0].length() : 0;
  MONET_CHECK(p0 + ids.size(1) <= cfg_.context,
              "Transformer: {} cached + {} new tokens exceed the context of {}", p0, ids.size(1),
              cfg_.context);
  Tensor h = embed_->forward(ids);
  for (size_t i = 0; i < blocks; ++i) h = blocks_[i]->forward(h, caches ? &(*caches)[i] : nullptr);
  return h;
}

Tensor Transformer::forward(const Tensor& ids) {
  return lm_head_->forward(norm_->forward(run(ids, nullptr, blocks_.size())));
}

Tensor Transformer::hidden(const Tensor& ids, int blocks) {
  MONET_CHECK(blocks >= 1 && static_cast<size_t>(blocks) <= blocks_.size(),
              "Transformer: hidden state after {} blocks of {}", blocks, blocks_.size());
  return run(ids, nullptr, static_cast<size_t>(blocks));
}

Tensor Transformer::forward(const Tensor& ids, std::vector<KVCache>& caches) {
  MONET_CHECK(caches.size() == blocks_.size(),
              "Transformer: {} KV caches for {} layers (use make_caches())", caches.size(),
              blocks_.size());
  return lm_head_->forward(norm_->forward(run(ids, &caches, blocks_.size())));
}

std::map<std::string, double> Transformer::ffn_metrics() const {
  std::map<std::string, double> sum;
  std::map<std::string, int> count;
  for (const auto& b : blocks_)
    for (const auto& [k, v] : b->ffn().metrics()) sum[k] += v, ++count[k];
  for (auto& [k, v] : sum) v /= count[k];
  return sum;
}

Tensor Transformer::aux_loss() const {
  Tensor total;
  for (const auto& b : blocks_) {
    Tensor a = b->ffn().aux_loss();
    if (a.defined()) total = total.defined() ? add(total, a) : a;
  }
  return total;
}

}  // namespace monet::nn
