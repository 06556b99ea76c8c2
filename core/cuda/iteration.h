// Host-side helpers for the CUDA branches of the op files (core/ops/*.cpp): the dtype check and
// the construction of the kernels' strided iterations. Included only where MONET_WITH_CUDA is
// defined, by host C++ (it uses fmt through core/error.h).
#pragma once
#include <array>

#include "core/cpu/loops.h"
#include "core/cuda/device.h"
#include "core/cuda/kernels.h"
#include "core/tensor.h"

namespace monet::cuda {

// The CUDA kernels are compiled for F32 (and I32 where integers make sense): anything else is
// refused by name rather than silently converted.
inline void check_dtype(const char* op, const Tensor& t, bool allow_int = false) {
  MONET_CHECK(t.dtype() == DType::F32 || (allow_int && t.dtype() == DType::I32),
              "{}: the CUDA backend has no {} kernel (F32{} only); cast with .to(DType::F32) first",
              op, dtype_name(t.dtype()), allow_int ? " and I32" : "");
}

// An iteration over `shape` for K operands with the given element strides and offsets, coalesced
// as the CPU loops do (cpu::coalesce). More than kMaxDims axes left after that is an error.
template <int K>
Iter<K> make_iter(const char* op, const Shape& shape, const std::array<Shape, K>& strides,
                  const std::array<int64_t, K>& offsets) {
  std::vector<int64_t> s = shape;
  std::array<std::vector<int64_t>, K> st;
  for (int k = 0; k < K; ++k) st[k] = strides[k];
  Iter<K> it;
  it.numel = shape_numel(shape);
  for (int k = 0; k < K; ++k) it.offset[k] = offsets[k];
  if (it.numel == 0) return it;
  cpu::coalesce(s, st);
  MONET_CHECK(static_cast<int>(s.size()) <= kMaxDims,
              "{}: shape {} has {} non-mergeable axes; the CUDA kernels take at most {}", op,
              shape_str(shape), s.size(), kMaxDims);
  it.ndim = static_cast<int>(s.size());
  for (int d = 0; d < it.ndim; ++d) {
    it.shape[d] = s[d];
    for (int k = 0; k < K; ++k) it.stride[k][d] = st[k][d];
  }
  return it;
}

}  // namespace monet::cuda
