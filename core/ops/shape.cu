// CUDA twins of the strided copy and fill of shape.cpp: the kernels under contiguous, cast,
// concat, slice backward and every factory on the device.
#include "core/cuda/common.cuh"

namespace monet::cuda {
namespace {

// dst[it 0] = D(src[it 1]), one thread per element of the (broadcast) destination shape.
template <class D, class S>
__global__ void copy_kernel(D* dst, const S* src, Iter<2> it) {
  MONET_CUDA_LOOP(i, it.numel) {
    int64_t off[2];
    iter_offsets(it, i, off);
    dst[off[0]] = static_cast<D>(src[off[1]]);
  }
}

template <class T>
__global__ void fill_kernel(T* dst, T value, Iter<1> it) {
  MONET_CUDA_LOOP(i, it.numel) {
    int64_t off[1];
    iter_offsets(it, i, off);
    dst[off[0]] = value;
  }
}

template <class D, class S>
void launch_copy(void* dst, const void* src, const Iter<2>& it) {
  copy_kernel<D, S><<<grid_for(it.numel, kThreads), kThreads, 0, stream()>>>(
      static_cast<D*>(dst), static_cast<const S*>(src), it);
  MONET_CUDA_CHECK_LAUNCH("copy_kernel");
}

template <class D>
void copy_from(void* dst, DType src_t, const void* src, const Iter<2>& it) {
  switch (src_t) {
    case DType::F32:
      return launch_copy<D, float>(dst, src, it);
    case DType::F64:
      return launch_copy<D, double>(dst, src, it);
    case DType::I32:
      return launch_copy<D, int32_t>(dst, src, it);
  }
}

template <class T>
void launch_fill(void* dst, double value, const Iter<1>& it) {
  fill_kernel<T><<<grid_for(it.numel, kThreads), kThreads, 0, stream()>>>(
      static_cast<T*>(dst), static_cast<T>(value), it);
  MONET_CUDA_CHECK_LAUNCH("fill_kernel");
}

}  // namespace

void copy(DType dst_t, void* dst, DType src_t, const void* src, const Iter<2>& it) {
  if (it.numel == 0) return;
  switch (dst_t) {
    case DType::F32:
      return copy_from<float>(dst, src_t, src, it);
    case DType::F64:
      return copy_from<double>(dst, src_t, src, it);
    case DType::I32:
      return copy_from<int32_t>(dst, src_t, src, it);
  }
}

void fill(DType t, void* dst, double value, const Iter<1>& it) {
  if (it.numel == 0) return;
  switch (t) {
    case DType::F32:
      return launch_fill<float>(dst, value, it);
    case DType::F64:
      return launch_fill<double>(dst, value, it);
    case DType::I32:
      return launch_fill<int32_t>(dst, value, it);
  }
}

}  // namespace monet::cuda
