// A sparse autoencoder (SAE) on one activation site of a transformer: the post-hoc dictionary
// that MONET's experts are compared with (Park et al. 2024, arXiv 2412.04139, §1, §5;
// docs/math/sae.md §8). For x ∈ ℝᵈ, a dictionary of F features:
//
//   z  = act(W_enc (x − b_dec) + b_enc)        encoder, z ∈ ℝᶠ, z ≥ 0              (§8.1)
//   x̂  = W_dec z + b_dec                       decoder, unit-norm columns of W_dec   (§8.2)
//   L  = ‖x − x̂‖² / ‖x − x̄‖²  (+ λ Σ_f z_f / ‖x − x̄‖_rms)  over a batch           (§8.3)
//
// act is TopK (the k largest pre-activations kept, then ReLU: Gao et al. 2024) or ReLU with the L1
// penalty λ (Bricken et al. 2023). W_enc is stored [F, d] and W_dec is stored transposed, [F, d],
// so that row f of each is feature f: its encoder direction and its unit decoder direction.
//
// Spliced into a model (nn::ActivationHook) the SAE replaces its site's activation x with x̂ —
// the reconstruction's cost to the LM loss is what MONET avoids by construction — or, with the
// error term, with x̂ + (x − x̂) = x, so that only removed features change anything. Its features
// are its experts (moe::ExpertLayer): a token's score for feature f is z_f, and removing f drops
// z_f W_dec[f] from the reconstruction and changes nothing else.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "monet/expert_layer.h"
#include "nn/module.h"
#include "nn/transformer.h"

namespace monet::sae {

enum class Activation { TopK, ReLU };
const char* activation_name(Activation a);  // "topk", "relu": the names in files and reports

struct SaeOptions {
  int64_t d = 0;         // the activation's width (d_model)
  int64_t features = 0;  // F, the dictionary size
  Activation act = Activation::TopK;
  int64_t k = 0;  // TopK: features kept per token
  double l1 = 0;  // ReLU: the L1 coefficient λ (0: no sparsity penalty)
  int layer = 0;  // where it reads: block `layer`, at `site`
  nn::HookSite site = nn::HookSite::Mlp;
  void validate() const;         // errors name the option
  std::string sparsity() const;  // "k=32" or "l1=0.001"
};

// A code: the features of each of n tokens. TopK: `value` [n, k] at feature `index` [n, k]
// (int32); ReLU: `value` [n, F] dense and `index` undefined.
struct Code {
  Tensor value, index;
};

// The three equations as functions of tensors, so they can be gradient-checked one by one.
// x [n, d]; W_enc, W_dec [F, d]; b_enc [F]; b_dec [d].
Code sae_encode(const Tensor& x, const Tensor& W_enc, const Tensor& b_enc, const Tensor& b_dec,
                const SaeOptions& o);  // §8.1
// `keep`, when defined, is a [F] 0/1 mask multiplied into the code (removal).
Tensor sae_decode(const Code& c, const Tensor& W_dec, const Tensor& b_dec,
                  const Tensor& keep = Tensor());  // §8.2
struct SaeLoss {
  Tensor loss;      // normalised MSE + the L1 term: what is minimised
  double nmse = 0;  // ‖x − x̂‖² / ‖x − x̄‖² over the batch
  double l0 = 0;    // mean features > 0 per token
};
SaeLoss sae_loss(const Tensor& x, const Code& c, const Tensor& x_hat, const SaeOptions& o);  // §8.3

class SparseAutoencoder : public nn::Module, public nn::ActivationHook, public moe::ExpertLayer {
 public:
  // W_dec's rows are random unit vectors drawn from `gen`; W_enc starts equal to W_dec (tied
  // initialisation), b_enc and b_dec at 0 (training sets b_dec to the data's mean first).
  SparseAutoencoder(const SaeOptions& o, Generator& gen, const nn::ParamOptions& p = {});
  const SaeOptions& options() const { return o_; }

  Code encode(const Tensor& x) const;  // [n, d] -> code
  Tensor decode(const Code& c) const;  // -> [n, d], with the removed features dropped
  // Rescales every row of W_dec to unit norm (after each optimizer step), in place.
  void normalize_decoder();

  // The spliced activation: x̂ (or x̂ + (x − x̂_all) with the error term), x [..., d]; records the
  // code for expert_scores().
  Tensor apply(const Tensor& x) override;
  void set_error_term(bool on) { error_term_ = on; }
  bool error_term() const { return error_term_; }

  int64_t num_experts() const override { return o_.features; }
  moe::TokenScores expert_scores() const override;
  void remove_experts(const std::vector<int64_t>& experts) override;

  Tensor W_enc, b_enc, W_dec, b_dec;

 private:
  SaeOptions o_;
  bool error_term_ = false;
  Tensor keep_;  // [F] 0/1 while features are removed, else undefined
  Code last_;    // of the last apply(), detached
};

}  // namespace monet::sae
