// Training a sparse autoencoder on a frozen model's activations (docs/math/sae.md §8.4).
//
// Each step draws B random windows of T tokens from the corpus's train stream (the trainer's
// Batcher, its own seed), runs the model up to the SAE's block in evaluation mode without
// gradients, and takes one Adam step on the SAE's loss (sae.h §8.3) over the B·T activations;
// then every decoder row is rescaled to unit norm. b_dec starts at the mean activation of the
// first batch. The learning rate warms up linearly, then follows a cosine to a tenth.
//
// The scores are measured afterwards on the val split (`eval_windows` windows per domain):
// normalised MSE (Σ‖x − x̂‖² / Σ‖x − x̄‖², x̄ the mean over those tokens), L0 (features > 0 per
// token) and the dead features (never > 0 on any of those tokens). A sample of T·windows tokens
// per domain undercounts rare features: with F·(tokens·k)⁻¹ near 1 a live feature may simply not
// be seen; `monet experts --sae` counts over the whole val split.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "nn/transformer.h"
#include "sae/sae.h"
#include "train/corpus.h"

namespace monet::sae {

// Reads one site's activations: a recording hook at (layer, site) for the reader's lifetime
// (restoring whatever hook was there), and the model run only as far as that block.
class ActivationReader {
 public:
  ActivationReader(nn::Transformer& model, int layer, nn::HookSite site);
  ~ActivationReader();
  ActivationReader(const ActivationReader&) = delete;
  ActivationReader& operator=(const ActivationReader&) = delete;
  // ids [B, T] -> activations [B·T, d], detached (evaluation mode, no gradient).
  Tensor read(const Tensor& ids);

 private:
  class Recorder;
  nn::Transformer& model_;
  int layer_;
  nn::HookSite site_;
  std::shared_ptr<Recorder> recorder_;
  std::shared_ptr<nn::ActivationHook> previous_;
};

struct SaeTrainOptions {
  SaeOptions sae;  // d is taken from the model
  int64_t steps = 1000;
  int64_t batch = 16;   // windows per step
  int64_t context = 0;  // T; 0: the model's
  double lr = 1e-3;
  int64_t warmup = 50;        // steps of linear warm-up
  uint64_t seed = 0;          // the SAE's initialisation and the windows drawn
  int64_t eval_windows = 64;  // val windows per domain for the scores (0: all)
};

struct SaeStep {
  int64_t step = 0;  // 1-based
  double loss = 0, nmse = 0, l0 = 0, lr = 0;
  int64_t tokens = 0;  // activations in this step
};

struct SaeScores {
  double nmse = 0, l0 = 0;
  int64_t tokens = 0, dead = 0;
  std::vector<int64_t> fires;  // [feature] tokens on which it was > 0
};

struct SaeTrainResult {
  std::shared_ptr<SparseAutoencoder> sae;
  std::vector<SaeStep> steps;
  int64_t tokens = 0;  // activations trained on, over all steps
  SaeScores val;
  bool interrupted = false;  // stopped early by Ctrl-C: `steps` says how far it got
};

// `on_step` is called after every step (progress, logs); `stop` is polled between steps.
SaeTrainResult train_sae(nn::Transformer& model, const Corpus& corpus, const SaeTrainOptions& opt,
                         const std::function<void(const SaeStep&)>& on_step = nullptr,
                         const std::function<bool()>& stop = nullptr);

// The scores of `sae` on each domain's val split (every token once, or `windows` windows spread
// over each domain).
SaeScores score_sae(SparseAutoencoder& sae, ActivationReader& reader,
                    const std::vector<Domain>& domains, int64_t batch, int64_t context,
                    int64_t windows);

}  // namespace monet::sae
