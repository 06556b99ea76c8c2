// Reductions: sum and mean over any set of axes, max over one axis (values + indices), and
// sum_to, the reduction that undoes broadcasting (the gradient of expand and of every binary op).
#include <algorithm>
#include <limits>

#include "core/cpu/loops.h"
#include "core/cpu/parallel.h"
#include "core/flops.h"
#include "core/ops/common.h"
#ifdef MONET_WITH_CUDA
#include "core/cuda/iteration.h"
#endif

namespace monet {
using namespace detail;

namespace {

// Sorted, de-duplicated, non-negative axes; an empty list means every axis.
std::vector<int64_t> norm_axes(std::vector<int64_t> axes, int64_t ndim, const char* op) {
  if (axes.empty())
    for (int64_t i = 0; i < ndim; ++i) axes.push_back(i);
  for (int64_t& ax : axes) ax = norm_axis(ax, ndim, op);
  std::sort(axes.begin(), axes.end());
  axes.erase(std::unique(axes.begin(), axes.end()), axes.end());
  return axes;
}

Shape kept_shape(const Shape& s, const std::vector<int64_t>& axes) {  // reduced axes become 1
  Shape k = s;
  for (int64_t ax : axes) k[ax] = 1;
  return k;
}

Shape dropped_shape(const Shape& s, const std::vector<int64_t>& axes) {  // reduced axes removed
  Shape d;
  for (int64_t i = 0; i < static_cast<int64_t>(s.size()); ++i)
    if (!std::binary_search(axes.begin(), axes.end(), i)) d.push_back(s[i]);
  return d;
}

// out (shape = kept_shape) = Σ over `axes` of a.
Tensor sum_kernel(const Tensor& a, const std::vector<int64_t>& axes) {
  Shape ks = kept_shape(a.shape(), axes);
#ifdef MONET_WITH_CUDA
  if (a.device().is_cuda()) {
    cuda::check_dtype("sum", a);
    Tensor out = empty(ks, a.dtype(), a.device());
    flops::count(a.numel());
    // One iteration over the kept axes (it walks the dense output), one over the reduced axes
    // (the elements summed into each output), both as offsets into a.
    Shape kshape, kstride, rshape, rstride;
    for (int64_t d = 0; d < a.dim(); ++d) {
      const bool reduced = std::binary_search(axes.begin(), axes.end(), d);
      (reduced ? rshape : kshape).push_back(a.shape()[d]);
      (reduced ? rstride : kstride).push_back(a.strides()[d]);
    }
    cuda::sum(static_cast<const float*>(a.storage()->data()), out.data<float>(),
              cuda::make_iter<1>("sum", kshape, {kstride}, {a.offset()}),
              cuda::make_iter<1>("sum", rshape, {rstride}, {0}));
    return out;
  }
#endif
  check_cpu("sum", a);
  Tensor out = zeros(ks, a.dtype(), a.device());
  flops::count(a.numel());
  MONET_SWITCH_FLOAT(a.dtype(), "sum", [&] {
    using T = scalar_t;
    T* o = out.data<T>();
    const T* p = static_cast<const T*>(a.storage()->data());
    const int64_t nd = a.dim();
    // Reducing a suffix of a dense tensor: row sums with a double accumulator.
    bool suffix = a.is_contiguous() && !axes.empty() &&
                  axes.front() == nd - static_cast<int64_t>(axes.size());
    if (suffix) {
      const int64_t rows = out.numel(), cols = rows ? a.numel() / rows : 0;
      p += a.offset();
      cpu::parallel_for(rows, std::max<int64_t>(1, 32768 / std::max<int64_t>(cols, 1)),
                        [&](int64_t begin, int64_t end) {
                          for (int64_t r = begin; r < end; ++r) {
                            double acc = 0;
                            for (int64_t c = 0; c < cols; ++c) acc += p[r * cols + c];
                            o[r] = static_cast<T>(acc);
                          }
                        });
      return;
    }
    Shape ost = out.strides();
    for (int64_t ax : axes) ost[ax] = 0;
    cpu::strided_loop<2>(a.shape(), {ost, a.strides()}, {0, a.offset()},
                         [&](const std::array<int64_t, 2>& q) { o[q[0]] += p[q[1]]; });
  });
  return out;
}

// Per row of a dense [m, n]: the maximum and the index of its first occurrence.
void max_rows(const Tensor& rows, const Tensor& values, const Tensor& index) {
  const int64_t n = rows.shape().back(), m = rows.numel() / n;
#ifdef MONET_WITH_CUDA
  if (rows.device().is_cuda()) {
    cuda::check_dtype("max", rows);
    cuda::max_rows(rows.data<float>(), values.data<float>(), index.data<int32_t>(), m, n);
    return;
  }
#endif
  check_cpu("max", rows);
  MONET_SWITCH_FLOAT(rows.dtype(), "max", [&] {
    const scalar_t* p = rows.data<scalar_t>();
    scalar_t* v = values.data<scalar_t>();
    int32_t* ix = index.data<int32_t>();
    for (int64_t r = 0; r < m; ++r) {
      int64_t best = 0;
      for (int64_t j = 1; j < n; ++j)
        if (p[r * n + j] > p[r * n + best]) best = j;
      v[r] = p[r * n + best];
      ix[r] = static_cast<int32_t>(best);
    }
  });
}

}  // namespace

Tensor sum(const Tensor& a, std::vector<int64_t> axes_in, bool keepdim) {
  std::vector<int64_t> axes = norm_axes(std::move(axes_in), a.dim(), "sum");
  Tensor kept = sum_kernel(a, axes);
  Shape ks = kept.shape();
  Tensor out = keepdim ? kept
                       : make_view(kept, dropped_shape(a.shape(), axes),
                                   contiguous_strides(dropped_shape(a.shape(), axes)), 0);
  // ∂/∂a Σ a = 1 on every summed element: broadcast g back over the reduced axes.
  record(out, "sum", {a}, [ks, sa = a.shape()](const Tensor& g) {
    return std::vector<Tensor>{expand(reshape(g, ks), sa)};
  });
  return out;
}

Tensor sum(const Tensor& a) {
  return sum(a, {}, false);
}

Tensor mean(const Tensor& a, std::vector<int64_t> axes, bool keepdim) {
  std::vector<int64_t> ax = norm_axes(std::move(axes), a.dim(), "mean");
  int64_t count = 1;
  for (int64_t i : ax) count *= a.shape()[i];
  MONET_CHECK(count > 0, "mean: reducing {} axes of shape {} with no elements", ax.size(),
              shape_str(a.shape()));
  return mul(sum(a, ax, keepdim), 1.0 / static_cast<double>(count));
}

Tensor mean(const Tensor& a) {
  return mean(a, {}, false);
}

std::pair<Tensor, Tensor> max(const Tensor& a, int64_t axis, bool keepdim) {
  axis = norm_axis(axis, a.dim(), "max");
  MONET_CHECK(a.shape()[axis] > 0, "max: axis {} of shape {} is empty", axis, shape_str(a.shape()));
  // Move the axis last and make rows dense: one pass per row.
  Tensor rows = contiguous(transpose(a.detach(), axis, -1));
  Shape ks = a.shape();
  ks[axis] = 1;
  Shape rs = rows.shape();
  rs.back() = 1;
  Tensor values = empty(rs, a.dtype(), a.device());
  Tensor index = empty(rs, DType::I32, a.device());
  max_rows(rows, values, index);
  values = contiguous(transpose(values, axis, -1)).reshape(ks);
  index = contiguous(transpose(index, axis, -1)).reshape(ks);
  Tensor vals = keepdim ? values : squeeze(values, axis);
  Tensor idx = keepdim ? index : squeeze(index, axis);
  // The gradient flows to the (first) maximum only.
  record(vals, "max", {a}, [index, ks, axis, sa = a.shape()](const Tensor& g) {
    Tensor z = zeros(sa, g.dtype(), g.device());
    return std::vector<Tensor>{scatter_add(z, axis, index, reshape(g, ks))};
  });
  return {vals, idx};
}

Tensor sum_to(const Tensor& a, const Shape& shape) {
  if (a.shape() == shape) return a;
  const int64_t lead = a.dim() - static_cast<int64_t>(shape.size());
  MONET_CHECK(lead >= 0, "sum_to: cannot reduce shape {} to {}", shape_str(a.shape()),
              shape_str(shape));
  std::vector<int64_t> axes;
  for (int64_t i = 0; i < a.dim(); ++i)
    if (i < lead || (shape[i - lead] == 1 && a.shape()[i] != 1))
      axes.push_back(i);
    else
      MONET_CHECK(shape[i - lead] == a.shape()[i], "sum_to: cannot reduce shape {} to {}",
                  shape_str(a.shape()), shape_str(shape));
  if (axes.empty()) return reshape(a, shape);
  return reshape(sum(a, axes, true), shape);
}

}  // namespace monet
