// CUDA twins of elementwise.cpp: the same functors (functors.h) applied by one thread per element.
#include "core/cuda/common.cuh"
#include "core/ops/functors.h"

namespace monet::cuda {
namespace {

// out[it 0] = f(a[it 1], b[it 2]): broadcasting and strided views through the iteration.
template <class F, class T>
__global__ void binary_kernel(F f, T* out, const T* a, const T* b, Iter<3> it) {
  MONET_CUDA_LOOP(i, it.numel) {
    int64_t off[3];
    iter_offsets(it, i, off);
    out[off[0]] = f(a[off[1]], b[off[2]]);
  }
}

// out[i] = f(x[i]) on dense data.
template <class F>
__global__ void unary_kernel(F f, float* out, const float* x, int64_t n) {
  MONET_CUDA_LOOP(i, n) out[i] = f(x[i]);
}

template <class T, class C>
__global__ void where_kernel(T* out, const C* cond, const T* a, const T* b, Iter<4> it) {
  MONET_CUDA_LOOP(i, it.numel) {
    int64_t off[4];
    iter_offsets(it, i, off);
    out[off[0]] = cond[off[1]] != C(0) ? a[off[2]] : b[off[3]];
  }
}

template <class T, class C>
void launch_where(void* out, const void* cond, const void* a, const void* b, const Iter<4>& it) {
  where_kernel<T, C><<<grid_for(it.numel, kThreads), kThreads, 0, stream()>>>(
      static_cast<T*>(out), static_cast<const C*>(cond), static_cast<const T*>(a),
      static_cast<const T*>(b), it);
  MONET_CUDA_CHECK_LAUNCH("where_kernel");
}

template <class T>
void where_cond(void* out, DType cond_t, const void* cond, const void* a, const void* b,
                const Iter<4>& it) {
  switch (cond_t) {
    case DType::F32:
      return launch_where<T, float>(out, cond, a, b, it);
    case DType::I32:
      return launch_where<T, int32_t>(out, cond, a, b, it);
    case DType::F64:
      return launch_where<T, double>(out, cond, a, b, it);
  }
}

}  // namespace

template <class F, class T>
void binary(F f, T* out, const T* a, const T* b, const Iter<3>& it) {
  if (it.numel == 0) return;
  binary_kernel<F, T><<<grid_for(it.numel, kThreads), kThreads, 0, stream()>>>(f, out, a, b, it);
  MONET_CUDA_CHECK_LAUNCH("binary_kernel");
}

template <class F>
void unary(F f, float* out, const float* x, int64_t n) {
  if (n == 0) return;
  unary_kernel<F><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(f, out, x, n);
  MONET_CUDA_CHECK_LAUNCH("unary_kernel");
}

void where(DType t, void* out, DType cond_t, const void* cond, const void* a, const void* b,
           const Iter<4>& it) {
  if (it.numel == 0) return;
  switch (t) {
    case DType::F32:
      return where_cond<float>(out, cond_t, cond, a, b, it);
    case DType::I32:
      return where_cond<int32_t>(out, cond_t, cond, a, b, it);
    case DType::F64:
      return;  // refused by the caller (cuda::check_dtype)
  }
}

// The instantiations elementwise.cpp uses: every binary functor for float and int32, every unary
// functor for float. A functor used without an entry here is a link error, not a silent gap.
#define MONET_BINARY(F)                                                                          \
  template void binary<fn::F, float>(fn::F, float*, const float*, const float*, const Iter<3>&); \
  template void binary<fn::F, int32_t>(fn::F, int32_t*, const int32_t*, const int32_t*,          \
                                       const Iter<3>&);
MONET_BINARY(Add)
MONET_BINARY(Sub)
MONET_BINARY(Mul)
MONET_BINARY(Div)
MONET_BINARY(Greater)
MONET_BINARY(GreaterEqual)
MONET_BINARY(Equal)
#undef MONET_BINARY

#define MONET_UNARY(F) template void unary<fn::F>(fn::F, float*, const float*, int64_t);
MONET_UNARY(AddScalar)
MONET_UNARY(MulScalar)
MONET_UNARY(Neg)
MONET_UNARY(Exp)
MONET_UNARY(Log)
MONET_UNARY(Sqrt)
MONET_UNARY(Rsqrt)
MONET_UNARY(Pow)
MONET_UNARY(Relu)
MONET_UNARY(Relu2)
MONET_UNARY(Step)
MONET_UNARY(Gelu)
MONET_UNARY(GeluGrad)
MONET_UNARY(Sigmoid)
MONET_UNARY(Silu)
MONET_UNARY(SiluGrad)
MONET_UNARY(Softplus)
#undef MONET_UNARY

}  // namespace monet::cuda
