#include "nn/norm.h"

#include "core/ops.h"

namespace monet::nn {

namespace {
void check_input(const char* op, const Tensor& x, int64_t dim) {
  MONET_CHECK(x.dim() >= 1 && x.shape().back() == dim, "{}: input of shape {} does not end in {}",
              op, shape_str(x.shape()), dim);
}
}  // namespace

RMSNorm::RMSNorm(int64_t dim, double eps, const ParamOptions& opt) : dim_(dim), eps_(eps) {
  MONET_CHECK(dim > 0 && eps >= 0, "RMSNorm: bad dim {} or eps {}", dim, eps);
  weight_ = register_parameter("weight", init_full({dim}, 1.0, opt));
}

Tensor RMSNorm::forward(const Tensor& x) const {
  check_input("RMSNorm", x, dim_);
  return rms_norm(x, weight_, eps_);
}

LayerNorm::LayerNorm(int64_t dim, double eps, bool bias, const ParamOptions& opt)
    : dim_(dim), eps_(eps) {
  MONET_CHECK(dim > 0 && eps >= 0, "LayerNorm: bad dim {} or eps {}", dim, eps);
  weight_ = register_parameter("weight", init_full({dim}, 1.0, opt));
  bias_ = init_full({dim}, 0.0, opt);
  if (bias) register_parameter("bias", bias_);
}

Tensor LayerNorm::forward(const Tensor& x) const {
  check_input("LayerNorm", x, dim_);
  return layer_norm(x, weight_, bias_, eps_);
}

}  // namespace monet::nn
