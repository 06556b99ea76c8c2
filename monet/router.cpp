#include "monet/router.h"

#include "core/autograd.h"
#include "core/ops.h"

namespace monet::moe {

double routing_threshold(int64_t k, int64_t sqrt_n) {
  MONET_CHECK(k >= 1 && k < sqrt_n, "MONET router: need 1 <= k < sqrt(N), got k = {}, sqrt(N) = {}",
              k, sqrt_n);
  return normal_icdf(1.0 - static_cast<double>(k) / static_cast<double>(sqrt_n));
}

void check_routing(const char* op, const Routing& r, const Tensor& x, int64_t sqrt_n) {
  MONET_CHECK(r.g1.defined() && r.g2.defined(), "{}: no routing scores", op);
  MONET_CHECK(r.g1.dim() == 4 && r.g1.size(-1) == sqrt_n && r.g1.shape() == r.g2.shape() &&
                  x.dim() == 3 && r.g1.size(0) == x.size(0) && r.g1.size(1) == x.size(1),
              "{}: routing {} / {} does not fit input {} with sqrt(N) = {}", op,
              shape_str(r.g1.shape()), shape_str(r.g2.shape()), shape_str(x.shape()), sqrt_n);
}

Tensor adaptive_routing(const Tensor& z, const Tensor& running_mean, const Tensor& running_var,
                        bool training, double sigma) {
  MONET_CHECK(z.dim() == 4, "MONET router: logits must be [B, T, H, sqrtN], got {}",
              shape_str(z.shape()));
  Tensor keep;
  {
    NoGradGuard ng;  // the normalised logits only decide which experts are kept
    Tensor n = batch_norm(z.detach(), 2, running_mean, running_var, training);
    Tensor tau = max(n, -1, true).first;  // τ = min(max_i n_i, σ)
    Tensor s = full({}, sigma, tau.dtype(), tau.device());
    tau = where(greater(tau, s), s, tau);
    keep = greater_equal(n, tau);
  }
  return softmax(where(keep, z, full({}, -1e10, z.dtype(), z.device())), -1);
}

}  // namespace monet::moe
