#include "nn/linear.h"

#include "core/ops.h"

namespace monet::nn {

Linear::Linear(int64_t in, int64_t out, bool bias, Generator& gen, const ParamOptions& opt)
    : in_(in), out_(out) {
  MONET_CHECK(in > 0 && out > 0, "Linear: sizes must be positive, got in {} out {}", in, out);
  weight_ = register_parameter("weight", init_normal({out, in}, gen, opt));
  if (bias) bias_ = register_parameter("bias", init_full({out}, 0.0, opt));
}

Tensor Linear::forward(const Tensor& x) const {
  MONET_CHECK(x.dim() >= 1 && x.shape().back() == in_,
              "Linear: input of shape {} does not end in in_features {} (weight {})",
              shape_str(x.shape()), in_, shape_str(weight_.shape()));
  return linear(x, weight_, bias_);
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  Tensor y = matmul(x, transpose(weight, 0, 1));  // x·Wᵀ, the transpose a gemm flag
  return bias.defined() ? add(y, bias) : y;
}

Embedding::Embedding(int64_t vocab, int64_t dim, Generator& gen, const ParamOptions& opt)
    : vocab_(vocab), dim_(dim) {
  MONET_CHECK(vocab > 0 && dim > 0, "Embedding: sizes must be positive, got vocab {} dim {}", vocab,
              dim);
  weight_ = register_parameter("weight", init_normal({vocab, dim}, gen, opt));
}

Tensor Embedding::forward(const Tensor& ids) const {
  MONET_CHECK(ids.dtype() == DType::I32, "Embedding: ids must be I32, got {} of shape {}",
              dtype_name(ids.dtype()), shape_str(ids.shape()));
  return embedding(weight_, ids);
}

}  // namespace monet::nn
