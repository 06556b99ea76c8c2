// Indexing: index_select (and embedding, which is index_select on rows), gather, scatter_add and
// top-k. Each one's backward is another of them, so the four check each other:
//   index_select ↔ index_add,  gather ↔ scatter_add,  topk → scatter_add into zeros.
// Scatters run sequentially in index order, so results are deterministic (no atomics); the CUDA
// kernels (index.cu) keep that order by giving each output element to one thread.
#include <algorithm>
#include <numeric>

#include "core/cpu/loops.h"
#include "core/ops/common.h"
#ifdef MONET_WITH_CUDA
#include "core/cuda/iteration.h"
#endif

namespace monet {
using namespace detail;

namespace {

// The index is int32 and lives with the tensor it indexes.
void check_index(const char* op, const Tensor& a, const Tensor& index) {
  check_dtype(op, index, DType::I32);
  check_same_device(op, a, index);
}

// [outer, n, inner] split of a dense tensor's shape around `axis`.
void split_around(const Shape& s, int64_t axis, int64_t* outer, int64_t* inner) {
  *outer = 1;
  *inner = 1;
  for (int64_t i = 0; i < axis; ++i) *outer *= s[i];
  for (size_t i = axis + 1; i < s.size(); ++i) *inner *= s[i];
}

// out = base; out.select(axis, index[i]) += src.select(axis, i) for each i, in order.
Tensor index_add(const Tensor& base, int64_t axis, const Tensor& index, const Tensor& src) {
  Tensor out = empty(base.shape(), base.dtype(), base.device());
  copy_(out, base);
  Tensor s = src.detach().contiguous(), ix = index.contiguous();
  int64_t outer, inner;
  split_around(out.shape(), axis, &outer, &inner);
  const int64_t A = out.shape()[axis], n = ix.numel();
#ifdef MONET_WITH_CUDA
  if (out.device().is_cuda()) {
    cuda::check_dtype("index_add", out);
    cuda::index_add(out.data<float>(), s.data<float>(), ix.data<int32_t>(), outer, A, n, inner);
    return out;
  }
#endif
  MONET_SWITCH_FLOAT(out.dtype(), "index_add", [&] {
    scalar_t* po = out.data<scalar_t>();
    const scalar_t* ps = s.data<scalar_t>();
    const int32_t* pi = ix.data<int32_t>();
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < n; ++i) {
        scalar_t* dst = po + (o * A + pi[i]) * inner;
        const scalar_t* row = ps + (o * n + i) * inner;
        for (int64_t j = 0; j < inner; ++j) dst[j] += row[j];
      }
  });
  return out;
}

#ifdef MONET_WITH_CUDA
// out (dense, holding the input) += src scattered along `axis` at `index`, on the device.
void scatter_add_cuda(const Tensor& out, int64_t axis, const Tensor& index, const Tensor& src) {
  MONET_CHECK(out.dim() <= cuda::kMaxDims,
              "scatter_add: {}-d input {}; the CUDA kernel takes at most {} axes", out.dim(),
              shape_str(out.shape()), cuda::kMaxDims);
  cuda::ScatterArgs args;
  args.ndim = static_cast<int>(out.dim());
  args.axis = static_cast<int>(axis);
  for (int64_t d = 0; d < out.dim(); ++d) {
    args.out_shape[d] = out.shape()[d];
    args.index_shape[d] = index.shape()[d];
    args.index_stride[d] = index.strides()[d];
    args.src_stride[d] = src.strides()[d];
  }
  args.index_offset = index.offset();
  args.src_offset = src.offset();
  args.out_numel = out.numel();
  cuda::scatter_add(out.data<float>(), static_cast<const int32_t*>(index.storage()->data()),
                    static_cast<const float*>(src.storage()->data()), args);
}
#endif

}  // namespace

Tensor index_select(const Tensor& a, int64_t axis, const Tensor& index) {
  axis = norm_axis(axis, a.dim(), "index_select");
  check_index("index_select", a, index);
  MONET_CHECK(index.dim() == 1, "index_select: index must be 1-D, got shape {}",
              shape_str(index.shape()));
  check_backend("index_select", a, /*allow_int=*/true);
  Tensor x = a.detach().contiguous(), ix = index.contiguous();
  const int64_t A = x.shape()[axis], n = ix.numel();
  Shape shape = x.shape();
  shape[axis] = n;
  Tensor out = empty(shape, x.dtype(), x.device());
  int64_t outer, inner;
  split_around(x.shape(), axis, &outer, &inner);
#ifdef MONET_WITH_CUDA
  if (a.device().is_cuda()) {  // indices are not checked on the host (no round trip): see kernels.h
    cuda::index_select(x.dtype(), x.raw_data(), ix.data<int32_t>(), out.raw_data(), outer, A, n,
                       inner);
  } else
#endif
  {
    const int32_t* pi = ix.data<int32_t>();
    for (int64_t i = 0; i < n; ++i)
      MONET_CHECK(pi[i] >= 0 && pi[i] < A,
                  "index_select: index {} out of range [0, {}) for shape {}", pi[i], A,
                  shape_str(a.shape()));
    MONET_SWITCH_ALL(x.dtype(), "index_select", [&] {
      const scalar_t* px = x.data<scalar_t>();
      scalar_t* po = out.data<scalar_t>();
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t i = 0; i < n; ++i)
          std::copy_n(px + (o * A + pi[i]) * inner, inner, po + (o * n + i) * inner);
    });
  }
  record(out, "index_select", {a}, [ix, axis, sa = a.shape()](const Tensor& g) {
    return std::vector<Tensor>{index_add(zeros(sa, g.dtype(), g.device()), axis, ix, g)};
  });
  return out;
}

Tensor embedding(const Tensor& weight, const Tensor& ids) {
  MONET_CHECK(weight.dim() == 2, "embedding: weight must be [vocab, dim], got shape {}",
              shape_str(weight.shape()));
  Shape shape = ids.shape();
  shape.push_back(weight.shape()[1]);
  return reshape(index_select(weight, 0, reshape(ids, {-1})), shape);
}

Tensor gather(const Tensor& a, int64_t axis, const Tensor& index) {
  axis = norm_axis(axis, a.dim(), "gather");
  check_index("gather", a, index);
  check_backend("gather", a, /*allow_int=*/true);
  MONET_CHECK(index.dim() == a.dim(), "gather: index shape {} and input shape {} differ in rank",
              shape_str(index.shape()), shape_str(a.shape()));
  for (int64_t d = 0; d < a.dim(); ++d)
    MONET_CHECK(d == axis || index.shape()[d] <= a.shape()[d],
                "gather: index shape {} exceeds input shape {} on axis {}",
                shape_str(index.shape()), shape_str(a.shape()), d);
  Tensor out = empty(index.shape(), a.dtype(), a.device());
  Shape ast = a.strides();
  const int64_t step = ast[axis], A = a.shape()[axis];
  ast[axis] = 0;
  const int32_t* pi = static_cast<const int32_t*>(index.storage()->data());
#ifdef MONET_WITH_CUDA
  if (a.device().is_cuda()) {
    cuda::gather(a.dtype(), out.raw_data(), pi, a.storage()->data(),
                 cuda::make_iter<3>("gather", index.shape(), {out.strides(), index.strides(), ast},
                                    {0, index.offset(), a.offset()}),
                 step, A);
  } else
#endif
  {
    MONET_SWITCH_ALL(a.dtype(), "gather", [&] {
      const auto* pa = static_cast<const scalar_t*>(a.storage()->data());
      scalar_t* po = out.data<scalar_t>();
      cpu::strided_loop<3>(index.shape(), {out.strides(), index.strides(), ast},
                           {0, index.offset(), a.offset()}, [&](const std::array<int64_t, 3>& p) {
                             const int32_t k = pi[p[1]];
                             MONET_CHECK(k >= 0 && k < A, "gather: index {} out of range [0, {})",
                                         k, A);
                             po[p[0]] = pa[p[2] + k * step];
                           });
    });
  }
  record(out, "gather", {a}, [ix = index, axis, sa = a.shape()](const Tensor& g) {
    return std::vector<Tensor>{scatter_add(zeros(sa, g.dtype(), g.device()), axis, ix, g)};
  });
  return out;
}

Tensor scatter_add(const Tensor& a, int64_t axis, const Tensor& index, const Tensor& src) {
  axis = norm_axis(axis, a.dim(), "scatter_add");
  check_index("scatter_add", a, index);
  check_same_device("scatter_add", a, src);
  check_backend("scatter_add", a, /*allow_int=*/false);
  MONET_CHECK(index.shape() == src.shape() && index.dim() == a.dim(),
              "scatter_add: index {} and src {} must have one shape, of the rank of input {}",
              shape_str(index.shape()), shape_str(src.shape()), shape_str(a.shape()));
  MONET_CHECK(a.dtype() == src.dtype(), "scatter_add: dtypes differ ({} and {})",
              dtype_name(a.dtype()), dtype_name(src.dtype()));
  for (int64_t d = 0; d < a.dim(); ++d)
    MONET_CHECK(d == axis || index.shape()[d] <= a.shape()[d],
                "scatter_add: index shape {} exceeds input shape {} on axis {}",
                shape_str(index.shape()), shape_str(a.shape()), d);
  Tensor out = empty(a.shape(), a.dtype(), a.device());
  copy_(out, a);
#ifdef MONET_WITH_CUDA
  if (a.device().is_cuda()) {
    scatter_add_cuda(out, axis, index, src);
  } else
#endif
  {
    Shape ost = out.strides();
    const int64_t step = ost[axis], A = a.shape()[axis];
    ost[axis] = 0;
    const int32_t* pi = static_cast<const int32_t*>(index.storage()->data());
    MONET_SWITCH_FLOAT(a.dtype(), "scatter_add", [&] {
      scalar_t* po = out.data<scalar_t>();
      const auto* ps = static_cast<const scalar_t*>(src.storage()->data());
      cpu::strided_loop<3>(index.shape(), {ost, index.strides(), src.strides()},
                           {0, index.offset(), src.offset()}, [&](const std::array<int64_t, 3>& p) {
                             const int32_t k = pi[p[1]];
                             MONET_CHECK(k >= 0 && k < A,
                                         "scatter_add: index {} out of range [0, {})", k, A);
                             po[p[0] + k * step] += ps[p[2]];
                           });
    });
  }
  record(out, "scatter_add", {a, src}, [ix = index, axis](const Tensor& g) {
    return std::vector<Tensor>{g, gather(g, axis, ix)};
  });
  return out;
}

std::pair<Tensor, Tensor> topk(const Tensor& a, int64_t k) {
  MONET_CHECK(a.dim() >= 1 && k >= 1 && k <= a.size(-1), "topk: k = {} out of range for shape {}",
              k, shape_str(a.shape()));
  check_backend("topk", a, /*allow_int=*/false);
  Tensor x = a.detach().contiguous();
  const int64_t n = x.shape().back(), m = x.numel() / n;
  Shape shape = x.shape();
  shape.back() = k;
  Tensor values = empty(shape, x.dtype(), x.device()), index = empty(shape, DType::I32, x.device());
#ifdef MONET_WITH_CUDA
  if (x.device().is_cuda()) {
    cuda::topk(x.data<float>(), values.data<float>(), index.data<int32_t>(), m, n, k);
  } else
#endif
  {
    MONET_SWITCH_FLOAT(x.dtype(), "topk", [&] {
      const scalar_t* px = x.data<scalar_t>();
      scalar_t* pv = values.data<scalar_t>();
      int32_t* pi = index.data<int32_t>();
      // Rows are independent: one chunk of rows per thread, each with its own index buffer.
      cpu::parallel_for(m, std::max<int64_t>(1, cpu::kRowGrain / n), [&](int64_t r0, int64_t r1) {
        std::vector<int32_t> order(n);
        for (int64_t r = r0; r < r1; ++r) {
          const scalar_t* row = px + r * n;
          std::iota(order.begin(), order.end(), 0);
          // Larger first; ties broken by the smaller index, so the result is deterministic.
          std::partial_sort(order.begin(), order.begin() + k, order.end(),
                            [row](int32_t i, int32_t j) {
                              return row[i] > row[j] || (row[i] == row[j] && i < j);
                            });
          for (int64_t j = 0; j < k; ++j) {
            pi[r * k + j] = order[j];
            pv[r * k + j] = row[order[j]];
          }
        }
      });
    });
  }
  record(values, "topk", {a}, [index, sa = a.shape()](const Tensor& g) {
    return std::vector<Tensor>{scatter_add(zeros(sa, g.dtype(), g.device()), -1, index, g)};
  });
  return {values, index};
}

}  // namespace monet
