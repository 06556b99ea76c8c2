// Linear and Embedding: the two layers that are one parameter matrix each.
//
// Linear:    y = x·Wᵀ + b,  W [out, in] (PyTorch's layout), x [..., in] -> y [..., out].
//            Wᵀ is a transposed view handed to gemm as a flag, never copied.
// Embedding: y[..., :] = E[ids[...], :],  E [vocab, dim], ids int32 [...] -> y [..., dim].
#pragma once
#include "nn/module.h"

namespace monet::nn {

// y = x·Wᵀ (+ b): the computation of Linear, for layers that hold their weights as raw tensors.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

class Linear : public Module {
 public:
  // W ~ N(0, init_std²), b = 0 (only when `bias`).
  Linear(int64_t in, int64_t out, bool bias, Generator& gen, const ParamOptions& opt = {});
  Tensor forward(const Tensor& x) const;

  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }  // undefined without bias

 private:
  int64_t in_, out_;
  Tensor weight_, bias_;
};

class Embedding : public Module {
 public:
  // E ~ N(0, init_std²).
  Embedding(int64_t vocab, int64_t dim, Generator& gen, const ParamOptions& opt = {});
  Tensor forward(const Tensor& ids) const;

  int64_t vocab() const { return vocab_; }
  int64_t dim() const { return dim_; }
  const Tensor& weight() const { return weight_; }

 private:
  int64_t vocab_, dim_;
  Tensor weight_;
};

}  // namespace monet::nn
