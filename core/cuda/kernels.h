// The launchers of the CUDA kernels, one group per op family. Each group is defined in the .cu file
// next to its CPU twin (core/ops/elementwise.cu beside core/ops/elementwise.cpp, ...), and called
// from the op's definition in the .cpp, in its `#ifdef MONET_WITH_CUDA` branch.
//
// Launchers take raw device pointers, sizes and strides, never a Tensor: the .cu files are compiled
// by nvcc, which cannot parse fmt (core/error.h), so shape checks and error messages stay in the
// .cpp and the kernels see plain data. Every launcher queues its work on cuda::stream(), returns at
// once (no synchronisation) and does nothing for empty inputs. Floating kernels are F32 only;
// copies and fills also take I32 and F64, the selections (where, gather, index_select) F32 and I32.
//
// No op reads device memory back to the host (the only waits are the host <-> device copies below,
// under Tensor::to, item() and to_vector()): cross-entropy keeps its row count on the device, and
// index checks that the CPU does on the host are not repeated here. Kernel faults surface as the
// error of the next checked call that waits on the stream.
//
// Out-of-range indices cannot throw from a kernel without a host round trip; the kernels instead
// never read or write out of bounds: a gathered value with a bad index is NaN (0 for I32), a
// scattered value with a bad index is dropped, a cross-entropy row with a bad target has a NaN
// loss.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace monet::cuda {

// An elementwise iteration over `shape` in row-major order, with K operands, each with its own
// element strides (0 on broadcast axes) and offset. Built on the host by make_iter
// (core/cuda/iteration.h), which drops size-1 axes and merges axes that are contiguous for every
// operand, so a dense tensor is one axis and costs no division per element.
constexpr int kMaxDims = 8;
template <int K>
struct Iter {
  int ndim = 0;
  int64_t numel = 0;
  int64_t shape[kMaxDims] = {};
  int64_t stride[K][kMaxDims] = {};
  int64_t offset[K] = {};
};

// ---- host <-> device (core/cuda/device.cpp); both wait for the copy to finish ----
void copy_host_to_device(void* dst, const void* src, size_t nbytes);
void copy_device_to_host(void* dst, const void* src, size_t nbytes);

// ---- shape (core/ops/shape.cu) ----
// dst[it 0] = convert(src[it 1]); any of F32, F64, I32 on either side.
void copy(DType dst_t, void* dst, DType src_t, const void* src, const Iter<2>& it);
void fill(DType t, void* dst, double value, const Iter<1>& it);

// ---- elementwise (core/ops/elementwise.cu) ----
// out[it 0] = f(a[it 1], b[it 2]) with the functors of core/ops/functors.h; T is float or int32_t.
template <class F, class T>
void binary(F f, T* out, const T* a, const T* b, const Iter<3>& it);
// out[i] = f(x[i]) over n dense floats.
template <class F>
void unary(F f, float* out, const float* x, int64_t n);
// out[it 0] = cond[it 1] != 0 ? a[it 2] : b[it 3]; out/a/b share dtype t, cond has cond_t.
void where(DType t, void* out, DType cond_t, const void* cond, const void* a, const void* b,
           const Iter<4>& it);

// ---- reductions (core/ops/reduce.cu) ----
// out[o] = Σ_r x[kept(o) + reduced(r)]: `kept` iterates the output (dense, row-major) over x's
// kept axes, `reduced` the reduced axes; both give offsets into x (kept carries x's offset).
void sum(const float* x, float* out, const Iter<1>& kept, const Iter<1>& reduced);
// Per row of a dense [m, n]: the maximum and the index of its first occurrence.
void max_rows(const float* x, float* values, int32_t* index, int64_t m, int64_t n);

// ---- softmax family and loss (core/ops/softmax.cu); rows of a dense [m, n] ----
void softmax_rows(const float* x, float* y, int64_t m, int64_t n, bool log);
// loss[0] = mean over rows with t != ignore of logsumexp(x) − x[t]; count[0] = that number of rows
// (as a float, read by the backward on the device). `rows` is scratch of 2·m floats.
void cross_entropy_forward(const float* x, const int32_t* t, int64_t m, int64_t n, int32_t ignore,
                           float* loss, float* count, float* rows);
// dx = g[0] · (softmax(x) − onehot(t)) / max(count[0], 1), zero on ignored rows.
void cross_entropy_backward(const float* x, const int32_t* t, const float* g, const float* count,
                            int64_t m, int64_t n, int32_t ignore, float* dx);

// ---- attention (core/ops/attention.cu); scores [rows, Tk], row r is query r mod T ----
// p = softmax over the keys j <= (Tk − T) + (r mod T) of scale·x, 0 on later keys.
void causal_softmax(const float* x, float* p, int64_t rows, int64_t T, int64_t Tk, double scale);
void causal_softmax_backward(const float* p, const float* g, float* dx, int64_t rows, int64_t Tk,
                             double scale);
// Rotary embedding of contiguous rows x [rows, 2·half] (row r at position r mod T), c/s [T, half].
void rotary(const float* x, const float* c, const float* s, float* y, int64_t rows, int64_t T,
            int64_t half);

// ---- normalisation (core/ops/norm.cu); rows of a dense [m, n], weight/bias [n] ----
// `centre` selects LayerNorm (bias may be null for RMSNorm). mean/rstd: [m].
void norm_forward(const float* x, const float* w, const float* b, float* y, float* mean,
                  float* rstd, int64_t m, int64_t n, double eps, bool centre);
// dx [m, n]; dw, db [n] (db ignored for RMSNorm but written); `partial` is scratch of
// 2·n·norm_chunks(m) floats for the deterministic two-stage column sums of dw and db.
constexpr int64_t kNormChunkRows = 64;
inline int64_t norm_chunks(int64_t m) {
  return (m + kNormChunkRows - 1) / kNormChunkRows;
}
void norm_backward(const float* x, const float* w, const float* g, const float* mean,
                   const float* rstd, float* dx, float* dw, float* db, float* partial, int64_t m,
                   int64_t n, bool centre);

// ---- indexing (core/ops/index.cu) ----
// A dense [outer, A, inner] input; out [outer, n, inner] with out[o, i, :] = x[o, idx[i], :].
void index_select(DType t, const void* x, const int32_t* idx, void* out, int64_t outer, int64_t A,
                  int64_t n, int64_t inner);
// out (dense [outer, A, inner], holding the base) += src [outer, n, inner] at rows idx[i].
// Deterministic, no atomics: one block per destination row, adding its sources in index order.
void index_add(float* out, const float* src, const int32_t* idx, int64_t outer, int64_t A,
               int64_t n, int64_t inner);
// out[it 0] = a[it 2 + idx[it 1] · step] (a's stride on the axis is 0 in the iteration).
void gather(DType t, void* out, const int32_t* idx, const void* a, const Iter<3>& it, int64_t step,
            int64_t A);
// out (dense, a's shape, holding a) gets += src[p] at the position of p with its `axis` coordinate
// replaced by idx[p]. Deterministic: one thread per output element, adding in index order.
struct ScatterArgs {
  int ndim = 0, axis = 0;
  int64_t out_shape[kMaxDims] = {};
  int64_t index_shape[kMaxDims] = {};
  int64_t index_stride[kMaxDims] = {};
  int64_t src_stride[kMaxDims] = {};
  int64_t index_offset = 0, src_offset = 0, out_numel = 0;
};
void scatter_add(float* out, const int32_t* idx, const float* src, const ScatterArgs& args);
// The k largest of each row of a dense [m, n], descending, ties to the smaller index.
void topk(const float* x, float* values, int32_t* index, int64_t m, int64_t n, int64_t k);

}  // namespace monet::cuda
