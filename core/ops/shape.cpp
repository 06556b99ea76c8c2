// Shape ops: views that share storage (reshape, permute, transpose, slice, expand, (un)squeeze),
// the copies that make data dense or move it (contiguous, cast, to_device, copy_, fill_), and
// concat/split. The backward of a view is the inverse view, or a sum/scatter back to the input.
#include <numeric>

#include "core/cpu/loops.h"
#include "core/cpu/parallel.h"
#include "core/flops.h"
#include "core/ops/common.h"
#ifdef MONET_WITH_CUDA
#include "core/cuda/iteration.h"
#endif

namespace monet {
namespace detail {

int64_t norm_axis(int64_t axis, int64_t ndim, const char* op) {
  MONET_CHECK(axis >= -ndim && axis < ndim, "{}: axis {} out of range for a {}-d tensor", op, axis,
              ndim);
  return axis < 0 ? axis + ndim : axis;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    MONET_CHECK(da == db || da == 1 || db == 1, "{}: shapes {} and {} do not broadcast", op,
                shape_str(a), shape_str(b));
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Shape broadcast_strides(const Tensor& a, const Shape& shape) {
  size_t n = shape.size(), m = a.shape().size();
  MONET_CHECK(m <= n, "broadcast: cannot view shape {} as {}", shape_str(a.shape()),
              shape_str(shape));
  Shape st(n, 0);
  for (size_t i = 0; i < m; ++i) {
    int64_t d = a.shape()[i];
    int64_t target = shape[n - m + i];
    MONET_CHECK(d == target || d == 1, "broadcast: cannot view shape {} as {}",
                shape_str(a.shape()), shape_str(shape));
    st[n - m + i] = (d == 1 && target != 1) ? 0 : a.strides()[i];
  }
  return st;
}

Tensor make_view(const Tensor& a, Shape shape, Shape strides, int64_t offset) {
  auto p = std::make_shared<TensorImpl>();
  p->storage = a.storage();
  p->shape = std::move(shape);
  p->strides = std::move(strides);
  p->offset = offset;
  p->dtype = a.dtype();
  return Tensor(std::move(p));
}

void check_cpu(const char* op, const Tensor& t) {
  MONET_CHECK(t.device().is_cpu(), "{}: no kernel for a tensor on {} in this build", op,
              t.device().str());
}

void check_backend(const char* op, const Tensor& t, bool allow_int) {
#ifdef MONET_WITH_CUDA
  if (t.device().is_cuda()) return cuda::check_dtype(op, t, allow_int);
#endif
  (void)allow_int;
  check_cpu(op, t);
}

void check_same_device(const char* op, const Tensor& a, const Tensor& b) {
  MONET_CHECK(a.device() == b.device(), "{}: tensors on different devices ({} and {})", op,
              a.device().str(), b.device().str());
}

void check_dtype(const char* op, const Tensor& t, DType want) {
  MONET_CHECK(t.dtype() == want, "{}: expected a {} tensor, got {} (shape {})", op,
              dtype_name(want), dtype_name(t.dtype()), shape_str(t.shape()));
}

}  // namespace detail

using namespace detail;

// ---- copy_ / fill_: the strided kernels under contiguous, cast, concat and slice backward ----

// copy_ into or out of BF16 storage (dtype.h): through float, rounding to nearest even into it.
static void copy_bf16(const Tensor& dst, const Tensor& src, const Shape& sst) {
  check_cpu("copy_ (BF16 is stored on the CPU only)", dst);
  auto each = [&](auto&& f) {
    cpu::parallel_strided_loop<2>(dst.shape(), {dst.strides(), sst}, {dst.offset(), src.offset()},
                                  cpu::kElementGrain, f);
  };
  if (dst.dtype() == DType::BF16 && src.dtype() == DType::BF16) {
    auto* d = static_cast<uint16_t*>(dst.storage()->data());
    const auto* s = static_cast<const uint16_t*>(src.storage()->data());
    each([&](const std::array<int64_t, 2>& o) { d[o[0]] = s[o[1]]; });
  } else if (dst.dtype() == DType::BF16) {
    auto* d = static_cast<uint16_t*>(dst.storage()->data());
    MONET_SWITCH_ALL(src.dtype(), "copy_", [&] {
      const auto* s = static_cast<const scalar_t*>(src.storage()->data());
      each(
          [&](const std::array<int64_t, 2>& o) { d[o[0]] = to_bf16(static_cast<float>(s[o[1]])); });
    });
  } else {
    const auto* s = static_cast<const uint16_t*>(src.storage()->data());
    MONET_SWITCH_ALL(dst.dtype(), "copy_", [&] {
      auto* d = static_cast<scalar_t*>(dst.storage()->data());
      each([&](const std::array<int64_t, 2>& o) {
        d[o[0]] = static_cast<scalar_t>(from_bf16(s[o[1]]));
      });
    });
  }
}

void copy_(const Tensor& dst, const Tensor& src) {
  check_same_device("copy_", dst, src);
  Shape sst = broadcast_strides(src, dst.shape());
  if (dst.dtype() == DType::BF16 || src.dtype() == DType::BF16) {
    if (!dst.device().is_meta()) copy_bf16(dst, src, sst);
    return;
  }
#ifdef MONET_WITH_CUDA
  if (dst.device().is_cuda()) {
    cuda::copy(dst.dtype(), dst.storage()->data(), src.dtype(), src.storage()->data(),
               cuda::make_iter<2>("copy_", dst.shape(), {dst.strides(), sst},
                                  {dst.offset(), src.offset()}));
    return;
  }
#endif
  check_cpu("copy_", dst);
  MONET_SWITCH_ALL(dst.dtype(), "copy_", [&] {
    using D = scalar_t;
    D* d = static_cast<D*>(dst.storage()->data());
    MONET_SWITCH_ALL(src.dtype(), "copy_", [&] {
      const auto* s = static_cast<const scalar_t*>(src.storage()->data());
      cpu::parallel_strided_loop<2>(
          dst.shape(), {dst.strides(), sst}, {dst.offset(), src.offset()}, cpu::kElementGrain,
          [&](const std::array<int64_t, 2>& o) { d[o[0]] = static_cast<D>(s[o[1]]); });
    });
  });
}

void add_(const Tensor& dst, const Tensor& src) {
  check_same_device("add_", dst, src);
  MONET_CHECK(dst.dtype() == src.dtype() && is_floating(dst.dtype()),
              "add_: dtypes {} and {} must be one floating type", dtype_name(dst.dtype()),
              dtype_name(src.dtype()));
  Shape sst = broadcast_strides(src, dst.shape());
  flops::count(dst.numel());
  if (!dst.device().is_cpu()) {  // CUDA (and meta): out of place, on the existing kernels
    if (!dst.device().is_meta()) copy_(dst, add(dst, src));
    return;
  }
  MONET_SWITCH_FLOAT(dst.dtype(), "add_", [&] {
    auto* d = static_cast<scalar_t*>(dst.storage()->data());
    const auto* a = static_cast<const scalar_t*>(src.storage()->data());
    cpu::parallel_strided_loop<2>(dst.shape(), {dst.strides(), sst}, {dst.offset(), src.offset()},
                                  cpu::kElementGrain,
                                  [&](const std::array<int64_t, 2>& o) { d[o[0]] += a[o[1]]; });
  });
}

void fill_(const Tensor& dst, double value) {
  if (dst.device().is_meta()) return;
#ifdef MONET_WITH_CUDA
  if (dst.device().is_cuda()) {
    cuda::fill(dst.dtype(), dst.storage()->data(), value,
               cuda::make_iter<1>("fill_", dst.shape(), {dst.strides()}, {dst.offset()}));
    return;
  }
#endif
  check_cpu("fill_", dst);
  MONET_SWITCH_ALL(dst.dtype(), "fill_", [&] {
    auto* d = static_cast<scalar_t*>(dst.storage()->data());
    const auto v = static_cast<scalar_t>(value);
    cpu::parallel_strided_loop<1>(dst.shape(), {dst.strides()}, {dst.offset()}, cpu::kElementGrain,
                                  [&](const std::array<int64_t, 1>& o) { d[o[0]] = v; });
  });
}

// ---- views ----

Tensor reshape(const Tensor& a, Shape s) {
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      MONET_CHECK(infer < 0, "reshape: more than one -1 in {}", shape_str(s));
      infer = static_cast<int64_t>(i);
    } else {
      known *= s[i];
    }
  }
  if (infer >= 0 && known > 0) s[infer] = a.numel() / known;
  MONET_CHECK(shape_numel(s) == a.numel(), "reshape: cannot view shape {} ({} elements) as {}",
              shape_str(a.shape()), a.numel(), shape_str(s));
  Tensor src = a.is_contiguous() ? a : contiguous(a);
  Tensor out = make_view(src, s, contiguous_strides(s), src.offset());
  Shape in_shape = a.shape();
  record(out, "reshape", {a},
         [in_shape](const Tensor& g) { return std::vector<Tensor>{reshape(g, in_shape)}; });
  return out;
}

Tensor permute(const Tensor& a, const Shape& order) {
  const int64_t n = a.dim();
  MONET_CHECK(static_cast<int64_t>(order.size()) == n, "permute: order {} for shape {}",
              shape_str(order), shape_str(a.shape()));
  Shape shape(n), strides(n), inverse(n, -1);
  for (int64_t i = 0; i < n; ++i) {
    int64_t ax = norm_axis(order[i], n, "permute");
    MONET_CHECK(inverse[ax] < 0, "permute: axis {} repeated in {}", ax, shape_str(order));
    inverse[ax] = i;
    shape[i] = a.shape()[ax];
    strides[i] = a.strides()[ax];
  }
  Tensor out = make_view(a, shape, strides, a.offset());
  record(out, "permute", {a},
         [inverse](const Tensor& g) { return std::vector<Tensor>{permute(g, inverse)}; });
  return out;
}

Tensor transpose(const Tensor& a, int64_t ax0, int64_t ax1) {
  Shape order(a.dim());
  std::iota(order.begin(), order.end(), 0);
  std::swap(order[norm_axis(ax0, a.dim(), "transpose")],
            order[norm_axis(ax1, a.dim(), "transpose")]);
  return permute(a, order);
}

Tensor slice(const Tensor& a, int64_t axis, int64_t start, int64_t end) {
  axis = norm_axis(axis, a.dim(), "slice");
  const int64_t n = a.shape()[axis];
  MONET_CHECK(0 <= start && start <= end && end <= n,
              "slice: range [{}, {}) out of bounds for axis {} of shape {}", start, end, axis,
              shape_str(a.shape()));
  Shape shape = a.shape();
  shape[axis] = end - start;
  Tensor out = make_view(a, shape, a.strides(), a.offset() + start * a.strides()[axis]);
  record(out, "slice", {a}, [a, axis, start, end](const Tensor& g) {
    Tensor z = zeros(a.shape(), g.dtype(), g.device());
    copy_(slice(z, axis, start, end), g);
    return std::vector<Tensor>{z};
  });
  // Several slices of one tensor (q, k, v of one projection) add into one gradient buffer in place,
  // instead of one zero-filled full-size gradient each and their sum.
  if (out.grad_fn())
    out.grad_fn()->accumulate = [shape = a.shape(), axis, start, end](Tensor& slot,
                                                                      const Tensor& g) {
      if (!slot.defined()) slot = zeros(shape, g.dtype(), g.device());
      add_(slice(slot, axis, start, end), g);
    };
  return out;
}

Tensor expand(const Tensor& a, const Shape& s) {
  Tensor out = make_view(a, s, broadcast_strides(a, s), a.offset());
  Shape in_shape = a.shape();
  record(out, "expand", {a},
         [in_shape](const Tensor& g) { return std::vector<Tensor>{sum_to(g, in_shape)}; });
  return out;
}

Tensor unsqueeze(const Tensor& a, int64_t axis) {
  axis = norm_axis(axis, a.dim() + 1, "unsqueeze");
  Shape s = a.shape();
  s.insert(s.begin() + axis, 1);
  return reshape(a, s);
}

Tensor squeeze(const Tensor& a, int64_t axis) {
  axis = norm_axis(axis, a.dim(), "squeeze");
  MONET_CHECK(a.shape()[axis] == 1, "squeeze: axis {} of shape {} is not 1", axis,
              shape_str(a.shape()));
  Shape s = a.shape();
  s.erase(s.begin() + axis);
  return reshape(a, s);
}

Tensor contiguous(const Tensor& a) {
  if (a.is_contiguous()) return a;
  Tensor out = empty(a.shape(), a.dtype(), a.device());
  copy_(out, a);
  record(out, "contiguous", {a}, [](const Tensor& g) { return std::vector<Tensor>{g}; });
  return out;
}

Tensor cast(const Tensor& a, DType t) {
  if (a.dtype() == t) return a;
  Tensor out = empty(a.shape(), t, a.device());
  copy_(out, a);
  if (is_floating(t) && is_floating(a.dtype())) {
    DType from = a.dtype();
    record(out, "cast", {a},
           [from](const Tensor& g) { return std::vector<Tensor>{cast(g, from)}; });
  }
  return out;
}

Tensor to_device(const Tensor& a, Device d) {
  if (a.device() == d) return a;
#ifdef MONET_WITH_CUDA
  // Host <-> device: the source made dense on its own device, then one copy that the host waits
  // for. Differentiable: the gradient travels back to the source's device.
  const bool h2d = a.device().is_cpu() && d.is_cuda(), d2h = a.device().is_cuda() && d.is_cpu();
  if (h2d || d2h) {
    Tensor src = a.detach().contiguous();
    Tensor out = empty(a.shape(), a.dtype(), d);
    const size_t nbytes = static_cast<size_t>(a.numel()) * dtype_size(a.dtype());
    if (h2d)
      cuda::copy_host_to_device(out.raw_data(), src.raw_data(), nbytes);
    else
      cuda::copy_device_to_host(out.raw_data(), src.raw_data(), nbytes);
    record(out, "to_device", {a}, [from = a.device()](const Tensor& g) {
      return std::vector<Tensor>{to_device(g, from)};
    });
    return out;
  }
#endif
  MONET_CHECK(false, "to_device: no copy from {} to {} in this build", a.device().str(), d.str());
  return a;
}

Tensor concat(const std::vector<Tensor>& xs, int64_t axis) {
  MONET_CHECK(!xs.empty(), "concat: no tensors");
  axis = norm_axis(axis, xs[0].dim(), "concat");
  Shape shape = xs[0].shape();
  shape[axis] = 0;
  std::vector<int64_t> sizes;
  for (const Tensor& x : xs) {
    Shape a = x.shape(), b = xs[0].shape();
    MONET_CHECK(a.size() == b.size(), "concat: shapes {} and {} differ in rank", shape_str(b),
                shape_str(a));
    a[axis] = b[axis] = 0;
    MONET_CHECK(a == b && x.dtype() == xs[0].dtype(),
                "concat: shapes {} and {} differ outside axis {}", shape_str(xs[0].shape()),
                shape_str(x.shape()), axis);
    check_same_device("concat", xs[0], x);
    sizes.push_back(x.shape()[axis]);
    shape[axis] += x.shape()[axis];
  }
  Tensor out = empty(shape, xs[0].dtype(), xs[0].device());
  int64_t at = 0;
  {
    NoGradGuard ng;
    for (const Tensor& x : xs) {
      copy_(slice(out, axis, at, at + x.shape()[axis]), x);
      at += x.shape()[axis];
    }
  }
  record(out, "concat", xs, [sizes, axis](const Tensor& g) {
    std::vector<Tensor> gs;
    int64_t at = 0;
    for (int64_t n : sizes) {
      gs.push_back(slice(g, axis, at, at + n));
      at += n;
    }
    return gs;
  });
  return out;
}

std::vector<Tensor> split(const Tensor& a, const std::vector<int64_t>& sizes, int64_t axis) {
  axis = norm_axis(axis, a.dim(), "split");
  int64_t total = std::accumulate(sizes.begin(), sizes.end(), int64_t{0});
  MONET_CHECK(total == a.shape()[axis], "split: sizes {} do not add up to {} (axis {} of {})",
              shape_str(sizes), a.shape()[axis], axis, shape_str(a.shape()));
  std::vector<Tensor> parts;
  int64_t at = 0;
  for (int64_t n : sizes) {
    parts.push_back(slice(a, axis, at, at + n));
    at += n;
  }
  return parts;
}

}  // namespace monet
