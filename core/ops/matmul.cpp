// matmul: C = A·B on the last two axes, batch axes broadcast. Each matrix goes to cpu::gemm
// (OpenBLAS or oneDNN, f32 or bf16 products: core/gemm_mode.h) as it lies in memory: a row-major
// view is passed as is, a transposed view (unit stride on the row axis) as a transpose flag with
// its leading dimension, so x·Wᵀ and the backward products never copy. Only a view with no unit
// stride on either axis is made dense first.
//
// Backward (for C = A·B):  dA = dC·Bᵀ,  dB = Aᵀ·dC, each summed back over broadcast batch axes.
//
// On CUDA the same layouts go to cuBLAS, which is column-major: a row-major C = A·B is the
// column-major Cᵀ = Bᵀ·Aᵀ, so each call passes B first, then A, with the same transpose flags and
// leading dimensions as the CPU path. Batch axes become cublasSgemmStridedBatched calls (one per
// index of the batch axes that do not coalesce into one stride). cuBLAS runs in its default math
// mode: full FP32, no TF32, so results match the CPU's sgemm to rounding.
#include <climits>

#include "core/cpu/blas.h"
#include "core/cpu/loops.h"
#include "core/cpu/parallel.h"
#include "core/flops.h"
#include "core/ops/common.h"
#ifdef MONET_WITH_CUDA
#include "core/cuda/cublas_lib.h"
#include "core/cuda/iteration.h"
#endif

namespace monet {
using namespace detail;

namespace {

struct GemmOperand {
  CBLAS_TRANSPOSE trans;
  int64_t ld;
};

// How to hand a [rows, cols] matrix with element strides (sr, sc) to row-major gemm, if possible.
bool gemm_layout(int64_t rows, int64_t cols, int64_t sr, int64_t sc, GemmOperand* out) {
  if ((sc == 1 || cols == 1) && sr >= std::max<int64_t>(1, cols)) {
    *out = {CblasNoTrans, sr};
    return true;
  }
  if ((sr == 1 || rows == 1) && sc >= std::max<int64_t>(1, rows)) {
    *out = {CblasTrans, sc};
    return true;
  }
  return false;
}

#ifdef MONET_WITH_CUDA
// C = A·B for every batch index on the device. sa, sb, sc: batch strides of A, B, C (0 on
// broadcast axes). The innermost batch axis left after coalescing is one strided-batched call.
void cuda_gemm(const Tensor& a, const Tensor& b, const Tensor& out, const Shape& batch, Shape sa,
               Shape sb, Shape sc, GemmOperand la, GemmOperand lb, int64_t M, int64_t N,
               int64_t K) {
  for (int64_t v : {M, N, K, la.ld, lb.ld})
    MONET_CHECK(v <= INT_MAX, "matmul: size {} exceeds cuBLAS's int range (shapes {} and {})", v,
                shape_str(a.shape()), shape_str(b.shape()));
  std::vector<int64_t> shape = batch;
  std::array<std::vector<int64_t>, 3> st{std::move(sa), std::move(sb), std::move(sc)};
  cpu::coalesce(shape, st);
  long long count = 1, stride_a = 0, stride_b = 0, stride_c = 0;
  if (!shape.empty()) {
    count = shape.back();
    stride_a = st[0].back();
    stride_b = st[1].back();
    stride_c = st[2].back();
    shape.pop_back();
    for (auto& v : st) v.pop_back();
  }
  MONET_CHECK(count <= INT_MAX, "matmul: batch of {} exceeds cuBLAS's int range", count);
  const auto op = [](const GemmOperand& g) {
    return g.trans == CblasTrans ? CUBLAS_OP_T : CUBLAS_OP_N;
  };
  const float alpha = 1.0f, beta = 0.0f;
  const auto* pa = static_cast<const float*>(a.storage()->data());
  const auto* pb = static_cast<const float*>(b.storage()->data());
  float* pc = out.data<float>();
  cublasHandle_t h = cuda::cublas();
  const auto gemm = cuda::cublas_lib().sgemm_strided_batched;
  cpu::strided_loop<3>(
      shape, st, {a.offset(), b.offset(), 0}, [&](const std::array<int64_t, 3>& o) {
        // Column-major Cᵀ [N, M] = Bᵀ [N, K] · Aᵀ [K, M].
        MONET_CUDA_CHECK(gemm(h, op(lb), op(la), static_cast<int>(N), static_cast<int>(M),
                              static_cast<int>(K), &alpha, pb + o[1], static_cast<int>(lb.ld),
                              stride_b, pa + o[0], static_cast<int>(la.ld), stride_a, &beta,
                              pc + o[2], static_cast<int>(N), stride_c, static_cast<int>(count)));
      });
}
#endif

// The forward kernel: no autograd, a and b already validated.
Tensor matmul_kernel(Tensor a, Tensor b) {
  const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  // [..., M, K]·[K, N] with a dense A: fold the batch into M, one gemm.
  if (b.dim() == 2 && a.dim() > 2 && a.is_contiguous()) {
    Shape out_shape = a.shape();
    out_shape.back() = N;
    Tensor a2 = make_view(a, {a.numel() / K, K}, {K, 1}, a.offset());
    return make_view(matmul_kernel(a2, b), out_shape, contiguous_strides(out_shape), 0);
  }
  Shape ba(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
  Shape batch = broadcast_shapes(ba, bb, "matmul");
  Shape out_shape = batch;
  out_shape.push_back(M);
  out_shape.push_back(N);
  GemmOperand la{}, lb{};
  if (!gemm_layout(M, K, a.strides()[a.dim() - 2], a.strides().back(), &la)) {
    a = a.detach().contiguous();
    la = {CblasNoTrans, K};
  }
  if (!gemm_layout(K, N, b.strides()[b.dim() - 2], b.strides().back(), &lb)) {
    b = b.detach().contiguous();
    lb = {CblasNoTrans, N};
  }
  Tensor out = empty(out_shape, a.dtype(), a.device());
  if (out.numel() == 0) return out;
  flops::count(2 * shape_numel(batch) * M * N * K);
  if (K == 0) {
    fill_(out, 0.0);
    return out;
  }
  // Batch strides of each operand (0 on broadcast axes), and of the dense output.
  auto batch_strides = [&](const Tensor& t) {
    Tensor v = make_view(t, Shape(t.shape().begin(), t.shape().end() - 2),
                         Shape(t.strides().begin(), t.strides().end() - 2), t.offset());
    return broadcast_strides(v, batch);
  };
  Shape so = contiguous_strides(batch);
  for (int64_t& s : so) s *= M * N;
#ifdef MONET_WITH_CUDA
  if (out.device().is_cuda()) {
    cuda_gemm(a, b, out, batch, batch_strides(a), batch_strides(b), so, la, lb, M, N, K);
    return out;
  }
#endif
  const GemmMode mode = gemm_mode();
  MONET_SWITCH_FLOAT(a.dtype(), "matmul", [&] {
    const auto* pa = static_cast<const scalar_t*>(a.storage()->data());
    const auto* pb = static_cast<const scalar_t*>(b.storage()->data());
    scalar_t* pc = out.data<scalar_t>();
    std::vector<std::array<int64_t, 3>> offsets;  // of each gemm of the batch
    cpu::strided_loop<3>(batch, {batch_strides(a), batch_strides(b), so},
                         {a.offset(), b.offset(), 0},
                         [&](const std::array<int64_t, 3>& o) { offsets.push_back(o); });
    // Small gemms (attention's per-head products) run one per thread, each single-threaded;
    // a large one is threaded by the library itself.
    const int64_t count = static_cast<int64_t>(offsets.size());
    const int64_t grain = M * N * K >= (int64_t{1} << 21) ? count : 1;
    cpu::parallel_for(count, grain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const auto& o = offsets[static_cast<size_t>(i)];
        cpu::gemm(mode, la.trans, lb.trans, M, N, K, pa + o[0], la.ld, pb + o[1], lb.ld,
                  scalar_t(0), pc + o[2], N);
      }
    });
  });
  return out;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  MONET_CHECK(a.dim() >= 2 && b.dim() >= 2 && a.size(-1) == b.size(-2),
              "matmul: shapes {} and {} do not multiply (need [..., M, K] and [..., K, N])",
              shape_str(a.shape()), shape_str(b.shape()));
  MONET_CHECK(a.dtype() == b.dtype(), "matmul: dtypes differ ({} and {})", dtype_name(a.dtype()),
              dtype_name(b.dtype()));
  check_same_device("matmul", a, b);
  check_backend("matmul", a);
  Tensor out = matmul_kernel(a, b);
  const bool need_a = a.requires_grad(), need_b = b.requires_grad();
  record(out, "matmul", {a, b}, [a = a.detach(), b = b.detach(), need_a, need_b](const Tensor& g) {
    Tensor ga, gb;
    if (need_a) ga = sum_to(matmul(g, transpose(b, -1, -2)), a.shape());
    if (!need_b) {
    } else if (b.dim() == 2 &&
               a.dim() > 2) {  // shared weight: one gemm over all rows, no batch sum
      const int64_t K = a.size(-1), N = b.size(-1);
      gb = matmul(transpose(reshape(a, {-1, K}), 0, 1), reshape(g, {-1, N}));
    } else {
      gb = sum_to(matmul(transpose(a, -1, -2), g), b.shape());
    }
    return std::vector<Tensor>{ga, gb};
  });
  return out;
}

}  // namespace monet
