// The feed-forward slot of a transformer block. The dense MLP (nn/mlp.h) fills it by default; the
// sparse layers (SMoE, PEER, MONET in monet/) plug in through TransformerConfig's factory.
// Input and output are [..., d_model].
#pragma once
#include <string>

#include "core/flops.h"
#include "nn/module.h"

namespace monet::nn {

// FLOP categories of a feed-forward layer (core/flops.h FlopScope), read by `monet table`:
// the work of choosing experts (router logits, key scores, top-k, gates, their aux losses), a
// retrieval query network (PEER's, whose cost does not depend on N), and the experts themselves.
inline const std::string kFlopsRetrieval = "retrieval";
inline const std::string kFlopsQuery = "query";
inline const std::string kFlopsExperts = "experts";

class FeedForward : public Module {
 public:
  virtual Tensor forward(const Tensor& x) = 0;
  // Auxiliary loss of this layer's last forward (undefined Tensor if none), added to the LM loss
  // by the trainer (load balancing of a router, for instance).
  virtual Tensor aux_loss() const { return Tensor(); }
  // Named numbers about the last forward for the training log (the unweighted parts of the aux
  // loss, the fraction of dropped tokens, ...); empty if none.
  virtual std::vector<std::pair<std::string, double>> metrics() const { return {}; }
};

}  // namespace monet::nn
