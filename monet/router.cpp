#include "monet/router.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/autograd.h"
#include "core/cpu/parallel.h"
#include "core/kernel_path.h"
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

namespace {

// The keep mask by composed ops (any device): n = BatchNorm(z), τ = min(max_i n_i, σ), n ≥ τ.
Tensor keep_mask_composed(const Tensor& z, const Tensor& running_mean, const Tensor& running_var,
                          bool training, double sigma) {
  Tensor n = batch_norm(z, 2, running_mean, running_var, training);
  Tensor tau = max(n, -1, true).first;
  Tensor s = full({}, sigma, tau.dtype(), tau.device());
  tau = where(greater(tau, s), s, tau);
  return greater_equal(n, tau);
}

// The same mask in two passes over z on the CPU: the per-head statistics (training only), then per
// (token, head) row the normalised maximum, τ, and the comparison, never storing n.
Tensor keep_mask_cpu(const Tensor& zin, const Tensor& running_mean, const Tensor& running_var,
                     bool training, double sigma, double momentum = kBatchNormMomentum,
                     double eps = kBatchNormEps) {
  Tensor z = zin.contiguous(), keep = empty_like(z);
  const int64_t H = z.size(2), S = z.size(3), rows = z.numel() / S, count = rows / H * S;
  MONET_CHECK(!training || count > 1,
              "MONET router: training needs more than one logit per head, got {}",
              shape_str(z.shape()));
  MONET_SWITCH_FLOAT(z.dtype(), "MONET router", [&] {
    using T = scalar_t;
    const T* pz = z.data<T>();
    T* pk = keep.data<T>();
    const int64_t grain = cpu::kRowGrain / S;
    std::vector<T> mean(static_cast<size_t>(H)), inv(static_cast<size_t>(H));
    if (training) {
      // Per head: the mean, then the biased variance about it, each in per-chunk partial sums.
      std::vector<double> part(static_cast<size_t>(cpu::kMaxChunks * H));
      auto per_head = [&](auto&& term) {
        std::fill(part.begin(), part.end(), 0.0);
        cpu::parallel_chunks(rows, grain, [&](int c, int64_t r0, int64_t r1) {
          for (int64_t r = r0; r < r1; ++r) {
            const int64_t h = r % H;
            double acc = 0;
            for (int64_t i = 0; i < S; ++i) acc += term(pz[r * S + i], h);
            part[static_cast<size_t>(c * H + h)] += acc;
          }
        });
        std::vector<double> total(static_cast<size_t>(H));
        for (int c = 0; c < cpu::kMaxChunks; ++c)
          for (int64_t h = 0; h < H; ++h) total[h] += part[static_cast<size_t>(c * H + h)];
        return total;
      };
      std::vector<double> mu = per_head([](T v, int64_t) { return static_cast<double>(v); });
      for (int64_t h = 0; h < H; ++h) mean[h] = static_cast<T>(mu[h] / static_cast<double>(count));
      std::vector<double> ss = per_head([&](T v, int64_t h) {
        const T d = v - mean[h];
        return static_cast<double>(d * d);
      });
      std::vector<double> var(static_cast<size_t>(H));
      for (int64_t h = 0; h < H; ++h) {
        var[h] = ss[h] / static_cast<double>(count);
        inv[h] = static_cast<T>(1.0 / std::sqrt(static_cast<T>(var[h]) + static_cast<T>(eps)));
      }
      Tensor v = empty({H}, z.dtype());
      for (int64_t h = 0; h < H; ++h) v.data<T>()[h] = static_cast<T>(var[h]);
      update_running_stats(running_mean, running_var,
                           from_vector(mean, {H}).to(running_mean.dtype()),
                           v.to(running_var.dtype()), count, momentum);
    } else {
      Tensor rm = running_mean.to(z.dtype()).contiguous(),
             rv = running_var.to(z.dtype()).contiguous();
      for (int64_t h = 0; h < H; ++h) {
        mean[h] = rm.data<T>()[h];
        inv[h] = static_cast<T>(1.0 / std::sqrt(rv.data<T>()[h] + static_cast<T>(eps)));
      }
    }
    const T s = static_cast<T>(sigma);
    cpu::parallel_for(rows, grain, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t h = r % H;
        const T* zi = pz + r * S;
        T mx = zi[0];
        for (int64_t i = 1; i < S; ++i) mx = std::max(mx, zi[i]);
        const T tau = std::min((mx - mean[h]) * inv[h], s);  // n is monotone in z: max n = n(max z)
        for (int64_t i = 0; i < S; ++i)
          pk[r * S + i] = (zi[i] - mean[h]) * inv[h] >= tau ? T(1) : T(0);
      }
    });
  });
  return keep;
}

}  // namespace

Tensor adaptive_routing(const Tensor& z, const Tensor& running_mean, const Tensor& running_var,
                        bool training, double sigma) {
  MONET_CHECK(z.dim() == 4, "MONET router: logits must be [B, T, H, sqrtN], got {}",
              shape_str(z.shape()));
  MONET_CHECK(running_mean.shape() == Shape{z.size(2)} && running_var.shape() == Shape{z.size(2)},
              "MONET router: running statistics {} / {} do not fit {} heads of logits {}",
              shape_str(running_mean.shape()), shape_str(running_var.shape()), z.size(2),
              shape_str(z.shape()));
  Tensor keep;
  {
    NoGradGuard ng;  // the normalised logits only decide which experts are kept
    keep = use_fused_kernel(z.device())
               ? keep_mask_cpu(z.detach(), running_mean, running_var, training, sigma)
               : keep_mask_composed(z.detach(), running_mean, running_var, training, sigma);
  }
  return masked_softmax(z, keep);  // softmax of the raw logits over the kept entries
}

}  // namespace monet::moe
