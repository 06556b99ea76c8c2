#include "monet/aux_loss.h"

#include "core/ops.h"

namespace monet::moe {

namespace {
// −mean_{h,i} log ḡ_hi, ḡ = mean over (B, T).  Σ over the two routers then halves it.
Tensor neg_mean_log_usage(const Tensor& g) {
  Tensor usage = mean(g, {0, 1});  // (H, √N)
  Tensor floor = full({}, 1e-9, g.dtype(), g.device());
  return neg(mean(log(where(greater(usage, floor), usage, floor))));
}
Tensor mean_one_minus_max(const Tensor& g) {  // mean over (B,T,H) of 1 − max_i ĝ_hi
  return add(neg(mean(max(g, -1).first)), 1.0);
}
}  // namespace

Tensor uniformity_loss(const Routing& r) {
  return mul(add(neg_mean_log_usage(r.g1), neg_mean_log_usage(r.g2)), 0.5);
}

Tensor ambiguity_loss(const Routing& r) {
  return mul(add(mean_one_minus_max(r.g1), mean_one_minus_max(r.g2)), 0.5);
}

}  // namespace monet::moe
