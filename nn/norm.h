// Normalisation over the last axis, on the core's fused kernels (core/ops/norm.cpp).
//
// RMSNorm:   y = γ ⊙ x / √(mean(x²) + ε),                 γ = 1 at init, ε = 1e-6 (LLaMA)
// LayerNorm: y = γ ⊙ (x − mean(x)) / √(var(x) + ε) + β,   γ = 1, β = 0 at init, ε = 1e-5
#pragma once
#include "nn/module.h"

namespace monet::nn {

class RMSNorm : public Module {
 public:
  explicit RMSNorm(int64_t dim, double eps = 1e-6, const ParamOptions& opt = {});
  Tensor forward(const Tensor& x) const;
  const Tensor& weight() const { return weight_; }

 private:
  int64_t dim_;
  double eps_;
  Tensor weight_;
};

class LayerNorm : public Module {
 public:
  // Without `bias`, β is a constant 0 (not a parameter).
  explicit LayerNorm(int64_t dim, double eps = 1e-5, bool bias = true,
                     const ParamOptions& opt = {});
  Tensor forward(const Tensor& x) const;
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }

 private:
  int64_t dim_;
  double eps_;
  Tensor weight_, bias_;
};

}  // namespace monet::nn
