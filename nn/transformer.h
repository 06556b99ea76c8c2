// The decoder-only transformer of docs/math/transformer.md §1 (LLaMA-style, pre-norm):
//   h₀ = E[ids]
//   h ← h + Attn(RMSNorm₁(h));  h ← h + FFN(RMSNorm₂(h))      for each of the N blocks
//   logits = RMSNorm(h)·W_headᵀ                                untied head, no biases anywhere
// Parameter names: embed.weight, layers.<i>.{norm1, attn.{wq,wk,wv,wo}, norm2, ffn.*}.weight,
// norm.weight, lm_head.weight. The FFN of each block comes from TransformerConfig's factory, or is
// the dense MLP when there is none.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "nn/attention.h"
#include "nn/ffn.h"
#include "nn/mlp.h"
#include "nn/norm.h"

namespace monet::nn {

struct TransformerConfig {
  int64_t vocab = 0, d_model = 0, n_layers = 0, n_heads = 0;
  int64_t n_kv_heads = 0;  // key/value heads of grouped-query attention; 0: n_heads
  int64_t context = 0;     // the longest sequence (RoPE tables, KV cache)
  double norm_eps = 1e-6, rope_theta = 10000.0;
  Activation mlp_activation = Activation::ReLU2;
  int64_t mlp_hidden = 0;  // 0: 4·d_model
  DType dtype = DType::F32;
  Device device = Device::cpu();
  double init_std = 0.02;

  int64_t mlp_hidden_or_default() const { return mlp_hidden > 0 ? mlp_hidden : 4 * d_model; }
  ParamOptions param_options() const { return {dtype, device, init_std}; }
  void validate() const;  // monet::Error naming the bad field
};

// Builds the FFN of block `layer` (called once per layer, in order, during construction).
using FeedForwardFactory = std::function<std::shared_ptr<FeedForward>(int layer)>;

// The two places of a block where an activation can be read or replaced:
//   Mlp    the feed-forward output FFN(RMSNorm₂(h)), before it joins the residual stream;
//   Resid  the residual stream leaving the block.
enum class HookSite { Mlp, Resid };
const char* hook_site_name(HookSite s);          // "mlp", "resid"
HookSite parse_hook_site(const std::string& s);  // errors name the choices

// A function [..., d] -> [..., d] a block applies at one site, as PyTorch's forward hooks that
// return a value: a sparse autoencoder spliced into the model, or a recorder of activations.
// Hooks are not child modules, so their parameters are not the model's (checkpoints, optimizer).
class ActivationHook {
 public:
  virtual ~ActivationHook() = default;
  virtual Tensor apply(const Tensor& x) = 0;
};

class Block : public Module {
 public:
  Block(const TransformerConfig& cfg, std::shared_ptr<const RotaryEmbedding> rope,
        std::shared_ptr<FeedForward> ffn, Generator& gen);
  Tensor forward(const Tensor& h, KVCache* cache = nullptr);  // [B, T, d] -> [B, T, d]
  FeedForward& ffn() const { return *ffn_; }
  // Sets (or, with null, removes) the hook at `site`; the block shares its ownership.
  void set_hook(HookSite site, std::shared_ptr<ActivationHook> hook);
  const std::shared_ptr<ActivationHook>& hook(HookSite site) const;

 private:
  std::shared_ptr<RMSNorm> norm1_, norm2_;
  std::shared_ptr<CausalSelfAttention> attn_;
  std::shared_ptr<FeedForward> ffn_;
  std::shared_ptr<ActivationHook> mlp_hook_, resid_hook_;
};

class Transformer : public Module {
 public:
  // Draws the parameters from `gen` in registration order (the factory draws from whatever
  // generator it captured, when it is called for its layer).
  Transformer(const TransformerConfig& cfg, Generator& gen, FeedForwardFactory ffn = nullptr);

  // ids int32 [B, T], T ≤ context -> logits [B, T, vocab].
  Tensor forward(const Tensor& ids);
  // Incremental decoding: ids [B, T_new] are the tokens after those already in `caches` (one per
  // layer, see make_caches), which are extended. Logits [B, T_new, vocab].
  Tensor forward(const Tensor& ids, std::vector<KVCache>& caches);
  std::vector<KVCache> make_caches() const { return std::vector<KVCache>(blocks_.size()); }
  // The residual stream after the first `blocks` blocks, [B, T, d] (1 ≤ blocks ≤ n_layers): the
  // forward without the rest, for reading the activations of an early layer.
  Tensor hidden(const Tensor& ids, int blocks);

  // Σ over blocks of their FFN's aux_loss() from the last forward; undefined if none has one.
  Tensor aux_loss() const;
  // Each FFN metric averaged over the layers that report it (see FeedForward::metrics).
  std::map<std::string, double> ffn_metrics() const;

  const TransformerConfig& config() const { return cfg_; }
  const std::vector<std::shared_ptr<Block>>& blocks() const { return blocks_; }

 private:
  Tensor run(const Tensor& ids, std::vector<KVCache>* caches, size_t blocks);  // residual stream

  TransformerConfig cfg_;
  std::shared_ptr<const RotaryEmbedding> rope_;
  std::shared_ptr<Embedding> embed_;
  std::vector<std::shared_ptr<Block>> blocks_;
  std::shared_ptr<RMSNorm> norm_;
  std::shared_ptr<Linear> lm_head_;
};

}  // namespace monet::nn
