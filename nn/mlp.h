// The dense feed-forward network, d → hidden → d, no biases (LLaMA; docs/math/transformer.md):
//   relu:   y = W₂ · relu(W₁x)
//   relu2:  y = W₂ · relu²(W₁x),  relu²(u) = max(u, 0)²  (MONET's choice)
//   gelu:   y = W₂ · gelu(W₁x)                            (GPT-2, tanh approximation)
//   swiglu: y = W₂ · (silu(W₁x) ⊙ W₃x)                    (LLaMA; W₃ is the gate's partner)
// Parameters: w1 [hidden, d], w2 [d, hidden], and w3 [hidden, d] for swiglu.
#pragma once
#include <memory>
#include <string>

#include "nn/ffn.h"
#include "nn/linear.h"

namespace monet::nn {

// The activations of the feed-forward layers; each kind's options say which it accepts.
enum class Activation { ReLU, ReLU2, GELU, SwiGLU };
std::string activation_name(Activation a);          // "relu", "relu2", "gelu", "swiglu"
Activation parse_activation(const std::string& s);  // inverse; monet::Error on anything else
// σ(u) of a pointwise activation (relu, relu2, gelu); SwiGLU, which needs a second projection,
// is an error.
Tensor activate(const Tensor& u, Activation a);

class MLP : public FeedForward {
 public:
  MLP(int64_t d_model, int64_t hidden, Activation act, Generator& gen,
      const ParamOptions& opt = {});
  Tensor forward(const Tensor& x) override;

  Activation activation() const { return act_; }
  int64_t hidden() const { return hidden_; }

 private:
  Activation act_;
  int64_t hidden_;
  std::shared_ptr<Linear> w1_, w2_, w3_;  // w3 only for swiglu
};

}  // namespace monet::nn
