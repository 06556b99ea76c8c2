// The softmax family, computed stably by subtracting each row's maximum:
//   softmax(x)_i     = exp(x_i − m) / Σ_j exp(x_j − m)
//   log_softmax(x)_i = (x_i − m) − log Σ_j exp(x_j − m)
//   cross_entropy    = mean over rows of (logsumexp(x) − x_target), fused: the probabilities are
//                      never stored, and its backward (softmax − onehot)/count is one kernel.
//   masked_softmax   = softmax over the kept entries of each row only, zero elsewhere (MONET's
//                      router: softmax of where(keep, x, −∞) in one pass, no −∞ tensor).
// The backward of softmax over the last axis and of masked_softmax is one row pass,
//   dx_j = y_j (g_j − Σ_k g_k y_k),
// exact for masked entries too, since y_j = 0 there.
#include <cmath>
#include <iterator>
#include <limits>

#include "core/cpu/parallel.h"
#include "core/cpu/rows.h"
#include "core/flops.h"
#include "core/kernel_path.h"
#include "core/ops/common.h"
#ifdef MONET_WITH_CUDA
#include "core/cuda/iteration.h"
#endif

namespace monet {
using namespace detail;

namespace {

// Rows of `a` along `axis`, made dense with the axis last. `back` undoes the move.
Tensor rows_of(const Tensor& a, int64_t axis) {
  return axis == a.dim() - 1 ? a.detach().contiguous()
                             : transpose(a.detach(), axis, -1).contiguous();
}
Tensor back_from_rows(const Tensor& r, int64_t axis, int64_t ndim) {
  return axis == ndim - 1 ? r : transpose(r, axis, -1).contiguous();
}

enum class RowOp { Softmax, LogSoftmax };

Tensor softmax_kernel(const Tensor& a, int64_t axis, RowOp op) {
  check_backend("softmax", a);
  Tensor x = rows_of(a, axis);
  Tensor y = empty_like(x);
  const int64_t n = x.numel() ? x.shape().back() : 0, m = n ? x.numel() / n : 0;
  flops::count(5 * x.numel());
#ifdef MONET_WITH_CUDA
  if (a.device().is_cuda()) {
    cuda::softmax_rows(x.data<float>(), y.data<float>(), m, n, op == RowOp::LogSoftmax);
    return back_from_rows(y, axis, a.dim());
  }
#endif
  MONET_SWITCH_FLOAT(a.dtype(), "softmax", [&] {
    using T = scalar_t;
    const T* px = x.data<T>();
    T* py = y.data<T>();
    cpu::parallel_for(m, cpu::kRowGrain / std::max<int64_t>(n, 1), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const T* xi = px + r * n;
        T* yi = py + r * n;
        T mx;
        const double s = cpu::exp_row(xi, op == RowOp::Softmax ? yi : nullptr, n, T(1), &mx);
        if (op == RowOp::Softmax) {
          const T inv = static_cast<T>(1.0 / s);
          for (int64_t j = 0; j < n; ++j) yi[j] *= inv;
        } else {
          // (x − m) − log s, not x − (m + log s): exact for the largest entry even at |x| ≫ 1
          const T log_s = static_cast<T>(std::log(s));
          for (int64_t j = 0; j < n; ++j) yi[j] = (xi[j] - mx) - log_s;
        }
      }
    });
  });
  return back_from_rows(y, axis, a.dim());
}

}  // namespace

Tensor detail::softmax_rows_backward(const Tensor& y, const Tensor& gin, double scale) {
  Tensor g = gin.contiguous(), dx = empty_like(y);
  const int64_t n = y.numel() ? y.shape().back() : 0, m = n ? y.numel() / n : 0;
  flops::count(4 * y.numel());
  if (y.device().is_meta()) return dx;  // shapes only
#ifdef MONET_WITH_CUDA
  if (y.device().is_cuda()) {  // attention.cu's row kernel
    cuda::check_dtype("softmax backward", g);
    cuda::causal_softmax_backward(y.data<float>(), g.data<float>(), dx.data<float>(), m, n, scale);
    return dx;
  }
#endif
  MONET_SWITCH_FLOAT(y.dtype(), "softmax backward", [&] {
    using T = scalar_t;
    const T *py = y.data<T>(), *pg = g.data<T>();
    T* pd = dx.data<T>();
    cpu::parallel_for(m, cpu::kRowGrain / std::max<int64_t>(n, 1), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        cpu::softmax_backward_row(py + r * n, pg + r * n, pd + r * n, n, scale);
    });
  });
  return dx;
}

Tensor softmax(const Tensor& a, int64_t axis) {
  axis = norm_axis(axis, a.dim(), "softmax");
  Tensor out = softmax_kernel(a, axis, RowOp::Softmax);
  // dx = y ⊙ (g − Σ_j g_j y_j): one row pass over the last axis, composed ops over another.
  record(out, "softmax", {a}, [y = out.detach(), axis](const Tensor& g) {
    if (axis == y.dim() - 1 && y.is_contiguous())
      return std::vector<Tensor>{softmax_rows_backward(y, g)};
    return std::vector<Tensor>{mul(y, sub(g, sum(mul(g, y), {axis}, true)))};
  });
  return out;
}

Tensor masked_softmax(const Tensor& x, const Tensor& keep) {
  MONET_CHECK(x.dim() >= 1 && keep.shape() == x.shape(),
              "masked_softmax: input {} and keep mask {} must have one shape", shape_str(x.shape()),
              shape_str(keep.shape()));
  check_same_device("masked_softmax", x, keep);
  check_backend("masked_softmax", x);
  Tensor out;
  if (!use_fused_kernel(x.device())) {  // the composition, on existing kernels (core/kernel_path.h)
    NoGradGuard ng;
    if (!x.device().is_meta() && x.numel() > 0) {            // the fused kernel's check, with ops
      const Tensor kept = sum(cast(keep, x.dtype()), {-1});  // entries kept per row
      const auto [fewest, row] = max(neg(reshape(kept, {-1})), 0);
      MONET_CHECK(fewest.item() < 0, "masked_softmax: row {} of {} keeps no finite entry",
                  static_cast<int64_t>(row.to(DType::F64).item()), shape_str(x.shape()));
    }
    out = softmax(where(keep, x.detach(), full({}, -1e30, x.dtype(), x.device())), -1);
  } else {
    Tensor xc = x.detach().contiguous(), k = keep.to(x.dtype()).contiguous();
    out = empty_like(xc);
    const int64_t n = xc.shape().back(), m = n ? xc.numel() / n : 0;
    flops::count(5 * xc.numel());
    int64_t empty_row[cpu::kMaxChunks];  // per chunk, the last row that kept nothing (or −1)
    std::fill(std::begin(empty_row), std::end(empty_row), -1);
    MONET_SWITCH_FLOAT(x.dtype(), "masked_softmax", [&] {
      using T = scalar_t;
      const T *px = xc.data<T>(), *pk = k.data<T>();
      T* py = out.data<T>();
      const int64_t grain = cpu::kRowGrain / std::max<int64_t>(n, 1);
      cpu::parallel_chunks(m, grain, [&](int c, int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          const T *xi = px + r * n, *ki = pk + r * n;
          T* yi = py + r * n;
          T mx = -std::numeric_limits<T>::infinity();
          for (int64_t j = 0; j < n; ++j)
            if (ki[j] != T(0)) mx = std::max(mx, xi[j]);
          double s = 0;
          for (int64_t j = 0; j < n; ++j) {
            yi[j] = ki[j] != T(0) ? std::exp(xi[j] - mx) : T(0);
            s += yi[j];
          }
          if (s == 0) {  // nothing kept (or all −∞): reported after the loop
            empty_row[c] = r;
            continue;
          }
          const T inv = static_cast<T>(1.0 / s);
          for (int64_t j = 0; j < n; ++j) yi[j] *= inv;
        }
      });
    });
    const int64_t bad = *std::max_element(std::begin(empty_row), std::end(empty_row));
    MONET_CHECK(bad < 0, "masked_softmax: row {} of {} keeps no finite entry", bad,
                shape_str(x.shape()));
    out = reshape(out, x.shape());
  }
  record(out, "masked_softmax", {x}, [y = out.detach()](const Tensor& g) {
    return std::vector<Tensor>{softmax_rows_backward(y.contiguous(), g)};
  });
  return out;
}

Tensor log_softmax(const Tensor& a, int64_t axis) {
  axis = norm_axis(axis, a.dim(), "log_softmax");
  Tensor out = softmax_kernel(a, axis, RowOp::LogSoftmax);
  // dx = g − exp(y) · Σ_j g_j
  record(out, "log_softmax", {a}, [y = out.detach(), axis](const Tensor& g) {
    return std::vector<Tensor>{sub(g, mul(exp(y), sum(g, {axis}, true)))};
  });
  return out;
}

Tensor logsumexp(const Tensor& a, int64_t axis, bool keepdim) {
  axis = norm_axis(axis, a.dim(), "logsumexp");
  Tensor out;
  {
    NoGradGuard ng;  // lse = x_i − log_softmax(x)_i, read off column 0
    Tensor x = a.detach();
    out = sub(slice(x, axis, 0, 1), slice(log_softmax(x, axis), axis, 0, 1));
    if (!keepdim) out = squeeze(out, axis);
  }
  // d lse / dx = softmax(x)
  record(out, "logsumexp", {a}, [x = a.detach(), axis, keepdim](const Tensor& g) {
    Tensor gk = keepdim ? g : unsqueeze(g, axis);
    return std::vector<Tensor>{mul(gk, softmax(x, axis))};
  });
  return out;
}

namespace {

// ∂loss/∂logits = g · (softmax(x) − onehot(t)) / count, zero on ignored rows.
Tensor cross_entropy_backward(const Tensor& x, const Tensor& t, const Tensor& g, int32_t ignore,
                              int64_t count) {
  Tensor dx = empty_like(x);
  const int64_t n = x.shape().back(), m = x.numel() / n;
  const double scale = g.item() / static_cast<double>(std::max<int64_t>(count, 1));
  MONET_SWITCH_FLOAT(x.dtype(), "cross_entropy", [&] {
    using T = scalar_t;
    const T* px = x.data<T>();
    const int32_t* pt = t.data<int32_t>();
    T* pd = dx.data<T>();
    cpu::parallel_for(m, cpu::kRowGrain / std::max<int64_t>(n, 1), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const T* xi = px + r * n;
        T* di = pd + r * n;
        if (pt[r] == ignore) {
          std::fill(di, di + n, T(0));
          continue;
        }
        T mx = xi[0];
        for (int64_t j = 1; j < n; ++j) mx = std::max(mx, xi[j]);
        double s = 0;
        for (int64_t j = 0; j < n; ++j) s += std::exp(xi[j] - mx);
        const double inv = 1.0 / s;
        for (int64_t j = 0; j < n; ++j) di[j] = static_cast<T>(scale * std::exp(xi[j] - mx) * inv);
        di[pt[r]] -= static_cast<T>(scale);
      }
    });
  });
  return dx;
}

#ifdef MONET_WITH_CUDA
// The CUDA path of cross_entropy: per-row losses, then their mean, both on the device. The number
// of counted rows stays on the device too (a one-element tensor), so neither the forward nor the
// backward reads anything back to the host.
Tensor cross_entropy_cuda(const Tensor& logits, const Tensor& targets, int32_t ignore_index) {
  cuda::check_dtype("cross_entropy", logits);
  Tensor x = logits.detach().contiguous();
  Tensor t = targets.contiguous();
  const int64_t n = x.shape().back(), m = n ? x.numel() / n : 0;
  flops::count(4 * x.numel());
  const Device dev = logits.device();
  Tensor out = empty({}, DType::F32, dev), count = empty({}, DType::F32, dev);
  Tensor rows = empty({2 * m}, DType::F32, dev);
  cuda::cross_entropy_forward(x.data<float>(), t.data<int32_t>(), m, n, ignore_index,
                              out.data<float>(), count.data<float>(), rows.data<float>());
  record(out, "cross_entropy", {logits},
         [x, t, count, ignore_index, m, n, shape = logits.shape()](const Tensor& g) {
           cuda::check_dtype("cross_entropy backward", g);
           Tensor gc = g.contiguous(), dx = empty_like(x);
           cuda::cross_entropy_backward(x.data<float>(), t.data<int32_t>(), gc.data<float>(),
                                        count.data<float>(), m, n, ignore_index, dx.data<float>());
           return std::vector<Tensor>{reshape(dx, shape)};
         });
  return out;
}
#endif

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int32_t ignore_index) {
  Shape lead(logits.shape().begin(), logits.shape().end() - (logits.dim() ? 1 : 0));
  MONET_CHECK(logits.dim() >= 1 && logits.size(-1) > 0, "cross_entropy: logits {} have no classes",
              shape_str(logits.shape()));
  MONET_CHECK(targets.shape() == lead, "cross_entropy: logits {} need targets of shape {}, got {}",
              shape_str(logits.shape()), shape_str(lead), shape_str(targets.shape()));
  check_dtype("cross_entropy (targets)", targets, DType::I32);
  check_same_device("cross_entropy", logits, targets);
#ifdef MONET_WITH_CUDA
  if (logits.device().is_cuda()) return cross_entropy_cuda(logits, targets, ignore_index);
#endif
  check_cpu("cross_entropy", logits);
  Tensor x = logits.detach().contiguous();
  Tensor t = targets.contiguous();
  const int64_t n = x.shape().back(), m = n ? x.numel() / n : 0;
  int64_t count = 0;
  double total = 0;
  flops::count(4 * x.numel());
  MONET_SWITCH_FLOAT(x.dtype(), "cross_entropy", [&] {
    using T = scalar_t;
    const T* px = x.data<T>();
    const int32_t* pt = t.data<int32_t>();
    for (int64_t r = 0; r < m; ++r) {  // targets first: no error can arise in the loop below
      if (pt[r] == ignore_index) continue;
      MONET_CHECK(pt[r] >= 0 && pt[r] < n,
                  "cross_entropy: target {} out of range [0, {}) at row {}", pt[r], n, r);
      ++count;
    }
    // Σ over rows of logsumexp(x) − x[t], in per-chunk partial sums.
    total =
        cpu::parallel_sum(m, cpu::kRowGrain / std::max<int64_t>(n, 1), [&](int64_t r0, int64_t r1) {
          double acc = 0;
          for (int64_t r = r0; r < r1; ++r) {
            if (pt[r] == ignore_index) continue;
            const T* xi = px + r * n;
            T mx = xi[0];
            for (int64_t j = 1; j < n; ++j) mx = std::max(mx, xi[j]);
            double s = 0;
            for (int64_t j = 0; j < n; ++j) s += std::exp(static_cast<double>(xi[j] - mx));
            acc += static_cast<double>(mx) + std::log(s) - static_cast<double>(xi[pt[r]]);
          }
          return acc;
        });
  });
  Tensor out =
      scalar(count ? total / static_cast<double>(count) : 0.0, logits.dtype(), logits.device());
  record(out, "cross_entropy", {logits},
         [x, t, ignore_index, count, shape = logits.shape()](const Tensor& g) {
           return std::vector<Tensor>{
               reshape(cross_entropy_backward(x, t, g, ignore_index, count), shape)};
         });
  return out;
}

}  // namespace monet
