// The CPU kernels' gemm: row-major C = A·B + β·C, arguments in BLAS order, transposes as flags
// with leading dimensions, as the callers' views lie in memory. The mode (core/gemm_mode.h) picks
// the library and the precision; read it once with gemm_mode() on the op's calling thread.
//
// β is 0, or 1 where the attention backward accumulates over blocks.
#pragma once
#include <cblas.h>

#include <cstdint>

#include "core/dtype.h"
#include "core/gemm_mode.h"

namespace monet::cpu {

void gemm(const GemmMode& mode, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t N,
          int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
          int64_t ldc);

// float64: always OpenBLAS's dgemm in f64 (gradient checks), whatever the mode.
inline void gemm(const GemmMode& /*mode*/, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M,
                 int64_t N, int64_t K, const double* A, int64_t lda, const double* B, int64_t ldb,
                 double beta, double* C, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta, tb, M, N, K, 1.0, A, lda, B, ldb, beta, C, ldc);
}

#ifdef MONET_WITH_DNNL
// core/cpu/onednn.cpp: oneDNN's matmul, f32 or with bf16 inputs (A16 and B16 dense copies of the
// operands as laid out in memory, leading dimensions lda and ldb).
void onednn_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t N, int64_t K,
                 const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                 int64_t ldc);
void onednn_gemm_bf16(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t N, int64_t K,
                      const uint16_t* A, int64_t lda, const uint16_t* B, int64_t ldb, float beta,
                      float* C, int64_t ldc);
// How many primitives the calling thread's cache has created (the tests check the steady state).
int64_t onednn_primitives_created();
#endif

}  // namespace monet::cpu
