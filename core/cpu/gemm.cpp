// cpu::gemm's dispatch (blas.h): the backend and precision of the mode, and the bf16 rounding of
// the operands.
//
// In bf16, each operand is rounded into a dense per-thread buffer laid out as it lies in memory
// (the transpose flag is kept, the leading dimension becomes its row length). The rounding costs
// O(MK + KN) against the product's O(MNK); PyTorch's autocast rounds its inputs the same way.
#include <algorithm>
#include <vector>

#include "core/cpu/blas.h"
#include "core/cpu/parallel.h"

namespace monet::cpu {
namespace {

// The [rows, cols] block that holds an M×K (or K×N) operand: transposed, it is stored K×M.
struct Block {
  int64_t rows, cols;
};
Block stored(CBLAS_TRANSPOSE t, int64_t r, int64_t c) {
  return t == CblasTrans ? Block{c, r} : Block{r, c};
}

// The operand rounded to bf16, densely: `out` gets rows·cols values, row length cols. T is uint16_t
// (bf16 bits, for oneDNN) or float (the rounded value, for the OpenBLAS emulation).
// Memory-bound: on the op's own thread the rows are split over the pool, inside a kernel's
// parallel loop (attention) it runs in that thread.
template <class T>
void round_operand(const float* x, int64_t ld, Block b, std::vector<T>& out) {
  out.resize(static_cast<size_t>(b.rows * b.cols));
  T* base = out.data();
  parallel_for(b.rows, std::max<int64_t>(1, kElementGrain / std::max<int64_t>(1, b.cols)),
               [&](int64_t r0, int64_t r1) {
                 for (int64_t i = r0; i < r1; ++i) {
                   const float* src = x + i * ld;
                   T* dst = base + i * b.cols;
                   for (int64_t j = 0; j < b.cols; ++j) {
                     if constexpr (sizeof(T) == 2)
                       dst[j] = to_bf16(src[j]);
                     else
                       dst[j] = from_bf16(to_bf16(src[j]));
                   }
                 }
               });
}

}  // namespace

void gemm(const GemmMode& mode, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t N,
          int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
          int64_t ldc) {
  if (M == 0 || N == 0) return;
  const Block ba = stored(ta, M, K), bb = stored(tb, K, N);
  if (mode.precision == Precision::BF16 && K > 0) {
#ifdef MONET_WITH_DNNL
    if (mode.backend == GemmBackend::OneDNN) {
      thread_local std::vector<uint16_t> a16, b16;
      round_operand(A, lda, ba, a16);
      round_operand(B, ldb, bb, b16);
      onednn_gemm_bf16(ta, tb, M, N, K, a16.data(), ba.cols, b16.data(), bb.cols, beta, C, ldc);
      return;
    }
#endif
    thread_local std::vector<float> ar, br;
    round_operand(A, lda, ba, ar);
    round_operand(B, ldb, bb, br);
    cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, 1.0f, ar.data(), ba.cols, br.data(), bb.cols, beta,
                C, ldc);
    return;
  }
#ifdef MONET_WITH_DNNL
  if (mode.backend == GemmBackend::OneDNN && K > 0) {
    onednn_gemm(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc);
    return;
  }
#endif
  cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace monet::cpu
