// The sparse autoencoder's equations and module (see sae.h; docs/math/sae.md §8).
#include "sae/sae.h"

#include <fmt/format.h>

#include <cmath>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "nn/linear.h"

namespace monet::sae {

const char* activation_name(Activation a) {
  return a == Activation::TopK ? "topk" : "relu";
}

void SaeOptions::validate() const {
  MONET_CHECK(d > 0, "sae: d must be positive, got {}", d);
  MONET_CHECK(features > 0, "sae: --features must be positive, got {}", features);
  MONET_CHECK(layer >= 0, "sae: --layer must be >= 0, got {}", layer);
  if (act == Activation::TopK)
    MONET_CHECK(k >= 1 && k <= features, "sae: --k must be in [1, features = {}], got {}", features,
                k);
  else
    MONET_CHECK(std::isfinite(l1) && l1 >= 0, "sae: --l1 must be a finite number >= 0, got {}", l1);
}

std::string SaeOptions::sparsity() const {
  return act == Activation::TopK ? fmt::format("k={}", k) : fmt::format("l1={:g}", l1);
}

// §8.1: pre = W_enc (x − b_dec) + b_enc. TopK keeps each row's k largest pre-activations (ties to
// the lower feature) and clips them at 0; ReLU keeps every positive one.
Code sae_encode(const Tensor& x, const Tensor& W_enc, const Tensor& b_enc, const Tensor& b_dec,
                const SaeOptions& o) {
  MONET_CHECK(x.dim() == 2 && x.size(1) == W_enc.size(1),
              "sae encode: x {} does not match W_enc {}", shape_str(x.shape()),
              shape_str(W_enc.shape()));
  // W_enc (x − b_dec) + b_enc = W_enc x + (b_enc − W_enc b_dec): b_dec's gradient is then one
  // matrix-vector product instead of a product over every token.
  Tensor bias = sub(b_enc, reshape(matmul(W_enc, reshape(b_dec, {-1, 1})), {-1}));
  Tensor pre = nn::linear(x, W_enc, bias);  // [n, F]
  if (o.act == Activation::ReLU) return {relu(pre), Tensor()};
  auto [value, index] = topk(pre, o.k);
  return {relu(value), index};
}

// §8.2: x̂ = Σ_f z_f W_dec[f] + b_dec. A TopK code gathers its k decoder rows per token (n·k·d
// work, not n·F·d); a dense code is one product.
Tensor sae_decode(const Code& c, const Tensor& W_dec, const Tensor& b_dec, const Tensor& keep) {
  Tensor v = c.value;
  if (!c.index.defined()) {
    if (keep.defined()) v = mul(v, keep);
    return add(matmul(v, W_dec), b_dec);
  }
  if (keep.defined())  // keep[index], through the same gather
    v = mul(v, reshape(embedding(reshape(keep, {-1, 1}), c.index), v.shape()));
  Tensor rows = embedding(W_dec, c.index);               // [n, k, d]
  Tensor x_hat = sum(mul(unsqueeze(v, -1), rows), {1});  // [n, d]
  return add(x_hat, b_dec);
}

// §8.3. The normaliser s² = mean_t ‖x_t − x̄‖² is a constant of the batch, so the loss is
// scale-free: the same λ means the same thing at every layer and site.
SaeLoss sae_loss(const Tensor& x, const Code& c, const Tensor& x_hat, const SaeOptions& o) {
  const int64_t n = x.size(0);
  double s2 = 0;
  {
    NoGradGuard ng;
    Tensor xc = sub(x, mean(x, {0}, true));
    s2 = std::max(sum(mul(xc, xc)).item() / static_cast<double>(n), 1e-30);
  }
  Tensor err = sub(x_hat, x);
  Tensor nmse = mul(sum(mul(err, err)), 1.0 / (static_cast<double>(n) * s2));
  SaeLoss out;
  out.loss = nmse;
  if (o.act == Activation::ReLU && o.l1 > 0)
    out.loss = add(nmse, mul(sum(c.value), o.l1 / (static_cast<double>(n) * std::sqrt(s2))));
  out.nmse = nmse.item();
  NoGradGuard ng;
  out.l0 = sum(greater(c.value, zeros({}, c.value.dtype(), c.value.device()))).item() /
           static_cast<double>(n);
  return out;
}

SparseAutoencoder::SparseAutoencoder(const SaeOptions& o, Generator& gen, const nn::ParamOptions& p)
    : o_(o) {
  o_.validate();
  nn::ParamOptions unit = p;
  unit.init_std = 1.0;
  Tensor dec = nn::init_normal({o_.features, o_.d}, gen, unit);
  Tensor enc = empty_like(dec);
  W_enc = register_parameter("W_enc", enc);
  b_enc = register_parameter("b_enc", nn::init_full({o_.features}, 0.0, p));
  W_dec = register_parameter("W_dec", dec);
  b_dec = register_parameter("b_dec", nn::init_full({o_.d}, 0.0, p));
  if (p.device.is_meta()) return;
  normalize_decoder();
  copy_(W_enc, W_dec);  // tied initialisation
}

Code SparseAutoencoder::encode(const Tensor& x) const {
  return sae_encode(x, W_enc, b_enc, b_dec, o_);
}

Tensor SparseAutoencoder::decode(const Code& c) const {
  return sae_decode(c, W_dec, b_dec, keep_);
}

void SparseAutoencoder::normalize_decoder() {
  NoGradGuard ng;
  Tensor norm = sqrt(sum(mul(W_dec, W_dec), {1}, true));  // [F, 1]
  copy_(W_dec, div(W_dec, add(norm, 1e-30)));
}

Tensor SparseAutoencoder::apply(const Tensor& x) {
  MONET_CHECK(x.dim() >= 1 && x.size(-1) == o_.d,
              "sae (layer {} {}): activation {} does not end in d = {}", o_.layer,
              nn::hook_site_name(o_.site), shape_str(x.shape()), o_.d);
  const Tensor flat = reshape(x, {-1, o_.d});
  const Code c = encode(flat);
  last_ = {c.value.detach(), c.index};
  Tensor out;
  if (!error_term_)
    out = decode(c);
  else if (!keep_.defined())
    out = flat;  // x̂ + (x − x̂) is x exactly
  else           // x − Σ_{f removed} z_f W_dec[f]
    out = add(flat, sub(decode(c), sae_decode(c, W_dec, b_dec)));
  return reshape(out, x.shape());
}

moe::TokenScores SparseAutoencoder::expert_scores() const {
  MONET_CHECK(last_.value.defined(), "sae: no code yet (run a forward pass first)");
  const int64_t n = last_.value.size(0), w = last_.value.size(1);
  const std::vector<float> v = last_.value.to(DType::F32).to_vector<float>();
  std::vector<int32_t> idx;
  if (last_.index.defined()) idx = last_.index.to_vector<int32_t>();
  moe::TokenScoresBuilder out(o_.features);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t j = 0; j < w; ++j) {
      const float s = v[static_cast<size_t>(t * w + j)];
      if (s > 0)
        out.add(idx.empty() ? static_cast<int32_t>(j) : idx[static_cast<size_t>(t * w + j)], s);
    }
    out.end_token();
  }
  return out.take();
}

void SparseAutoencoder::remove_experts(const std::vector<int64_t>& experts) {
  keep_ = Tensor();
  if (experts.empty()) return;
  std::vector<double> keep(static_cast<size_t>(o_.features), 1.0);
  for (int64_t e : experts) {
    MONET_CHECK(e >= 0 && e < o_.features, "sae: removed feature {} outside [0, {})", e,
                o_.features);
    keep[static_cast<size_t>(e)] = 0.0;
  }
  keep_ = from_vector(keep, {o_.features}).to(W_dec.dtype()).to(W_dec.device());
}

}  // namespace monet::sae
