// Normalisation over the last axis (RMSNorm, LayerNorm), fused: one pass forward that keeps the
// per-row statistics, one pass backward that produces dx, dγ (and dβ) together. BatchNorm (no
// affine parameters, for MONET's router and PEER's query) is written with other ops.
//
// RMSNorm:   r = 1/√(mean(x²) + ε),  y = γ ⊙ x·r
//            dx = r·(g⊙γ − x̂·mean(g⊙γ⊙x̂)),  dγ = Σ_rows g⊙x̂,   with x̂ = x·r
// LayerNorm: μ = mean(x), r = 1/√(var(x) + ε), x̂ = (x − μ)·r, y = γ⊙x̂ + β
//            dx = r·(ĝ − mean(ĝ) − x̂·mean(ĝ⊙x̂)) with ĝ = g⊙γ,  dγ = Σ g⊙x̂,  dβ = Σ g
#include <cmath>

#include "core/cpu/parallel.h"
#include "core/flops.h"
#include "core/ops/common.h"
#ifdef MONET_WITH_CUDA
#include "core/cuda/iteration.h"
#endif

namespace monet {
using namespace detail;

namespace {

void check_norm_args(const char* op, const Tensor& x, const Tensor& w) {
  MONET_CHECK(x.dim() >= 1 && w.dim() == 1 && w.shape()[0] == x.shape().back(),
              "{}: weight of shape {} does not match the last axis of input {}", op,
              shape_str(w.shape()), shape_str(x.shape()));
  MONET_CHECK(x.dtype() == w.dtype(), "{}: dtypes differ ({} and {})", op, dtype_name(x.dtype()),
              dtype_name(w.dtype()));
  check_same_device(op, x, w);
  check_backend(op, x);
}

// Forward of both norms; `centre` selects LayerNorm. Returns y and the per-row mean and rstd.
struct NormForward {
  Tensor y, mean, rstd;
};
NormForward norm_forward(const Tensor& xin, const Tensor& w, const Tensor* b, double eps,
                         bool centre) {
  Tensor x = xin.detach().contiguous(), wc = w.detach().contiguous();
  Tensor bc = b ? b->detach().contiguous() : Tensor();
  const int64_t n = x.shape().back(), m = n ? x.numel() / n : 0;
  NormForward f{empty_like(x), empty({m}, x.dtype(), x.device()),
                empty({m}, x.dtype(), x.device())};
  flops::count(5 * x.numel());
#ifdef MONET_WITH_CUDA
  if (x.device().is_cuda()) {
    cuda::norm_forward(x.data<float>(), wc.data<float>(), b ? bc.data<float>() : nullptr,
                       f.y.data<float>(), f.mean.data<float>(), f.rstd.data<float>(), m, n, eps,
                       centre);
    f.y = reshape(f.y, xin.shape());
    return f;
  }
#endif
  MONET_SWITCH_FLOAT(x.dtype(), "norm", [&] {
    using T = scalar_t;
    const T *px = x.data<T>(), *pw = wc.data<T>();
    const T* pb = b ? bc.data<T>() : nullptr;
    T *py = f.y.data<T>(), *pm = f.mean.data<T>(), *pr = f.rstd.data<T>();
    cpu::parallel_for(m, cpu::kRowGrain / std::max<int64_t>(n, 1), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const T* xi = px + r * n;
        double mu = 0, ss = 0;
        if (centre) {
          for (int64_t j = 0; j < n; ++j) mu += xi[j];
          mu /= static_cast<double>(n);
        }
        for (int64_t j = 0; j < n; ++j) ss += (xi[j] - mu) * (xi[j] - mu);
        const double rstd = 1.0 / std::sqrt(ss / static_cast<double>(n) + eps);
        pm[r] = static_cast<T>(mu);
        pr[r] = static_cast<T>(rstd);
        for (int64_t j = 0; j < n; ++j)
          py[r * n + j] = static_cast<T>((xi[j] - mu) * rstd) * pw[j] + (pb ? pb[j] : T(0));
      }
    });
  });
  f.y = reshape(f.y, xin.shape());
  return f;
}

// Backward of both norms: dx, dγ and (for LayerNorm) dβ in one pass.
std::vector<Tensor> norm_backward(const Tensor& xin, const Tensor& w, const NormForward& f,
                                  const Tensor& gin, bool centre) {
  Tensor x = xin.contiguous(), wc = w.contiguous(), g = gin.contiguous();
  const int64_t n = x.shape().back(), m = n ? x.numel() / n : 0;
  Tensor dx = empty_like(x);
  Tensor dw = zeros(w.shape(), w.dtype(), w.device()), db = zeros(w.shape(), w.dtype(), w.device());
  flops::count(8 * x.numel());
#ifdef MONET_WITH_CUDA
  if (x.device().is_cuda()) {
    cuda::check_dtype("norm backward", g);
    Tensor partial = empty({2 * n * cuda::norm_chunks(m)}, DType::F32, x.device());
    cuda::norm_backward(x.data<float>(), wc.data<float>(), g.data<float>(), f.mean.data<float>(),
                        f.rstd.data<float>(), dx.data<float>(), dw.data<float>(), db.data<float>(),
                        partial.data<float>(), m, n, centre);
    return {reshape(dx, xin.shape()), dw, db};
  }
#endif
  MONET_SWITCH_FLOAT(x.dtype(), "norm_backward", [&] {
    using T = scalar_t;
    const T *px = x.data<T>(), *pw = wc.data<T>(), *pg = g.data<T>();
    const T *pm = f.mean.data<T>(), *pr = f.rstd.data<T>();
    T *pdx = dx.data<T>(), *pdw = dw.data<T>(), *pdb = db.data<T>();
    // dγ, dβ are column sums over the rows: one partial per chunk of rows, added in chunk order.
    const int chunks = cpu::chunk_count(m, cpu::kRowGrain / std::max<int64_t>(n, 1));
    std::vector<double> partw(static_cast<size_t>(chunks * n), 0.0), partb(partw.size(), 0.0);
    cpu::parallel_chunks(
        m, cpu::kRowGrain / std::max<int64_t>(n, 1), [&](int c, int64_t r0, int64_t r1) {
          double *accw = partw.data() + c * n, *accb = partb.data() + c * n;
          for (int64_t r = r0; r < r1; ++r) {
            const T *xi = px + r * n, *gi = pg + r * n;
            const double mu = pm[r], rstd = pr[r];
            double mean_gh = 0, mean_ghx = 0;  // mean(ĝ), mean(ĝ ⊙ x̂)
            for (int64_t j = 0; j < n; ++j) {
              const double xh = (xi[j] - mu) * rstd, gh = static_cast<double>(gi[j]) * pw[j];
              mean_gh += gh;
              mean_ghx += gh * xh;
              accw[j] += static_cast<double>(gi[j]) * xh;
              accb[j] += gi[j];
            }
            mean_gh /= static_cast<double>(n);
            mean_ghx /= static_cast<double>(n);
            for (int64_t j = 0; j < n; ++j) {
              const double xh = (xi[j] - mu) * rstd, gh = static_cast<double>(gi[j]) * pw[j];
              pdx[r * n + j] =
                  static_cast<T>(rstd * (gh - (centre ? mean_gh : 0.0) - xh * mean_ghx));
            }
          }
        });
    std::vector<double> accw(n, 0.0), accb(n, 0.0);
    for (int c = 0; c < chunks; ++c)
      for (int64_t j = 0; j < n; ++j) accw[j] += partw[c * n + j], accb[j] += partb[c * n + j];
    for (int64_t j = 0; j < n; ++j) {
      pdw[j] = static_cast<T>(accw[j]);
      pdb[j] = static_cast<T>(accb[j]);
    }
  });
  return {reshape(dx, xin.shape()), dw, db};
}

}  // namespace

Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps) {
  check_norm_args("rms_norm", x, weight);
  NormForward f = norm_forward(x, weight, nullptr, eps, false);
  Tensor out = f.y;
  f.y = Tensor();  // the closure keeps only the statistics: holding `out` would be a cycle
  record(out, "rms_norm", {x, weight}, [x = x.detach(), w = weight.detach(), f](const Tensor& g) {
    std::vector<Tensor> d = norm_backward(x, w, f, g, false);
    return std::vector<Tensor>{d[0], d[1]};
  });
  return out;
}

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  check_norm_args("layer_norm", x, weight);
  check_norm_args("layer_norm", x, bias);
  NormForward f = norm_forward(x, weight, &bias, eps, true);
  Tensor out = f.y;
  f.y = Tensor();  // the closure keeps only the statistics: holding `out` would be a cycle
  record(out, "layer_norm", {x, weight, bias},
         [x = x.detach(), w = weight.detach(), f](const Tensor& g) {
           return norm_backward(x, w, f, g, true);
         });
  return out;
}

Tensor batch_norm(const Tensor& x, int64_t axis, const Tensor& running_mean,
                  const Tensor& running_var, bool training, double momentum, double eps) {
  axis = norm_axis(axis, x.dim(), "batch_norm");
  const int64_t C = x.shape()[axis];
  MONET_CHECK(running_mean.shape() == Shape{C} && running_var.shape() == Shape{C},
              "batch_norm: running statistics of shapes {} and {} for {} channels (axis {} of {})",
              shape_str(running_mean.shape()), shape_str(running_var.shape()), C, axis,
              shape_str(x.shape()));
  Shape bshape(x.dim(), 1);  // running stats viewed to broadcast against x
  bshape[axis] = C;
  if (!training) {
    Tensor mu = reshape(running_mean.detach(), bshape), var = reshape(running_var.detach(), bshape);
    return mul(sub(x, mu), rsqrt(add(var, eps)));
  }
  std::vector<int64_t> others;
  for (int64_t i = 0; i < x.dim(); ++i)
    if (i != axis) others.push_back(i);
  const int64_t count = x.numel() / std::max<int64_t>(C, 1);
  MONET_CHECK(count > 1, "batch_norm: training needs more than one value per channel, got shape {}",
              shape_str(x.shape()));
  Tensor mu = mean(x, others, true);
  Tensor centred = sub(x, mu);
  Tensor var = mean(mul(centred, centred), others, true);  // biased, as used to normalise
  update_running_stats(running_mean, running_var, reshape(mu, {C}), reshape(var, {C}), count,
                       momentum);
  return mul(centred, rsqrt(add(var, eps)));
}

void update_running_stats(const Tensor& running_mean, const Tensor& running_var, const Tensor& mean,
                          const Tensor& var, int64_t count, double momentum) {
  NoGradGuard ng;  // running statistics use the unbiased variance, as PyTorch does
  const double unbias = static_cast<double>(count) / static_cast<double>(count - 1);
  copy_(running_mean, add(mul(running_mean, 1.0 - momentum), mul(mean.detach(), momentum)));
  copy_(running_var, add(mul(running_var, 1.0 - momentum), mul(var.detach(), momentum * unbias)));
}

}  // namespace monet
