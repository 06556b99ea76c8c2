#include "nn/mlp.h"

#include "core/ops.h"

namespace monet::nn {

std::string activation_name(Activation a) {
  switch (a) {
    case Activation::ReLU:
      return "relu";
    case Activation::ReLU2:
      return "relu2";
    case Activation::GELU:
      return "gelu";
    case Activation::SwiGLU:
      return "swiglu";
  }
  return "?";
}

Activation parse_activation(const std::string& s) {
  for (Activation a : {Activation::ReLU, Activation::ReLU2, Activation::GELU, Activation::SwiGLU})
    if (activation_name(a) == s) return a;
  MONET_CHECK(false, "unknown activation '{}' (expected relu, relu2, gelu or swiglu)", s);
  return Activation::ReLU2;
}

Tensor activate(const Tensor& u, Activation a) {
  switch (a) {
    case Activation::ReLU:
      return relu(u);
    case Activation::ReLU2:
      return relu2(u);
    case Activation::GELU:
      return gelu(u);
    case Activation::SwiGLU:
      break;
  }
  throw Error("activate: swiglu is not pointwise (it gates a second projection)");
}

MLP::MLP(int64_t d_model, int64_t hidden, Activation act, Generator& gen, const ParamOptions& opt)
    : act_(act), hidden_(hidden) {
  MONET_CHECK(d_model > 0 && hidden > 0, "MLP: sizes must be positive, got d {} hidden {}", d_model,
              hidden);
  w1_ = register_module("w1", std::make_shared<Linear>(d_model, hidden, false, gen, opt));
  w2_ = register_module("w2", std::make_shared<Linear>(hidden, d_model, false, gen, opt));
  if (act == Activation::SwiGLU)
    w3_ = register_module("w3", std::make_shared<Linear>(d_model, hidden, false, gen, opt));
}

Tensor MLP::forward(const Tensor& x) {
  FlopScope scope(kFlopsExperts);
  Tensor u = w1_->forward(x);  // W₁x
  if (act_ == Activation::SwiGLU) return w2_->forward(mul(silu(u), w3_->forward(x)));
  return w2_->forward(activate(u, act_));
}

}  // namespace monet::nn
