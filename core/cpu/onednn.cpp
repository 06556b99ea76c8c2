// cpu::gemm on oneDNN's matmul primitive (blas.h, gemm_mode.h). Built when CMake finds Debian's
// libdnnl (MONET_WITH_DNNL).
//
// A primitive is made for one shape, layout and β: creating it (choosing and JIT-compiling a
// kernel) costs far more than a small product, so each thread keeps its primitives in a cache
// keyed by all of these, and a training step's steady state creates none. The memory objects are
// kept with them and re-pointed at each call's data. oneDNN is built on the same OpenMP as the
// rest (libgomp): called on the main thread it runs on the team, called inside a kernel's parallel
// loop (the attention's per-head products) it runs in that thread alone — one pool, as with
// OpenBLAS.
//
// Layouts: A is [M, K] with strides (lda, 1), or (1, lda) when transposed; B likewise; C is
// [M, N] with strides (ldc, 1). β ≠ 0 is a sum post-op (C = β·C + A·B).
#include <array>
#include <oneapi/dnnl/dnnl.hpp>
#include <unordered_map>

#include "core/cpu/blas.h"

namespace monet::cpu {
namespace {

using dims = dnnl::memory::dims;
using dt = dnnl::memory::data_type;

// M, N, K, the transposes, the three leading dimensions, β's bits, bf16 inputs.
using Key = std::array<int64_t, 10>;
struct KeyHash {
  size_t operator()(const Key& k) const {
    size_t h = 1469598103934665603ull;
    for (int64_t v : k) h = (h ^ static_cast<size_t>(v)) * 1099511628211ull;
    return h;
  }
};

struct Entry {
  dnnl::matmul prim;
  dnnl::memory a, b, c;
};

class Cache {
 public:
  Cache() : engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {}

  void run(const Key& k, const void* A, const void* B, float* C) {
    auto it = entries_.find(k);
    if (it == entries_.end()) {
      // A bound, so that a program feeding ever new shapes (sampling with a growing context)
      // does not keep every primitive it ever made.
      if (entries_.size() >= kMaxEntries) entries_.clear();
      it = entries_.emplace(k, make(k)).first;
      ++created_;
    }
    Entry& e = it->second;
    e.a.set_data_handle(const_cast<void*>(A));
    e.b.set_data_handle(const_cast<void*>(B));
    e.c.set_data_handle(C);
    e.prim.execute(stream_, {{DNNL_ARG_SRC, e.a}, {DNNL_ARG_WEIGHTS, e.b}, {DNNL_ARG_DST, e.c}});
    stream_.wait();
  }
  int64_t created() const { return created_; }

 private:
  static constexpr size_t kMaxEntries = 4096;

  Entry make(const Key& k) const {
    const int64_t M = k[0], N = k[1], K = k[2], lda = k[5], ldb = k[6], ldc = k[7];
    const bool ta = k[3] != 0, tb = k[4] != 0;
    const auto beta_bits = static_cast<uint32_t>(k[8]);
    float beta = 0;
    __builtin_memcpy(&beta, &beta_bits, 4);
    const dt in = k[9] != 0 ? dt::bf16 : dt::f32;
    const dnnl::memory::desc a_md(dims{M, K}, in, ta ? dims{1, lda} : dims{lda, 1});
    const dnnl::memory::desc b_md(dims{K, N}, in, tb ? dims{1, ldb} : dims{ldb, 1});
    const dnnl::memory::desc c_md(dims{M, N}, dt::f32, dims{ldc, 1});
    dnnl::primitive_attr attr;
    if (beta != 0.0f) {
      dnnl::post_ops po;
      po.append_sum(beta);
      attr.set_post_ops(po);
    }
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, c_md), attr, engine_);
    return Entry{dnnl::matmul(pd), dnnl::memory(a_md, engine_, nullptr),
                 dnnl::memory(b_md, engine_, nullptr), dnnl::memory(c_md, engine_, nullptr)};
  }

  dnnl::engine engine_;
  dnnl::stream stream_;
  std::unordered_map<Key, Entry, KeyHash> entries_;
  int64_t created_ = 0;
};

Cache& cache() {
  thread_local Cache c;
  return c;
}

Key key(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t N, int64_t K, int64_t lda,
        int64_t ldb, int64_t ldc, float beta, bool bf16) {
  uint32_t beta_bits = 0;
  __builtin_memcpy(&beta_bits, &beta, 4);
  return {M, N, K, ta == CblasTrans, tb == CblasTrans, lda, ldb, ldc, beta_bits, bf16};
}

}  // namespace

int64_t onednn_primitives_created() {
  return cache().created();
}

void onednn_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t N, int64_t K,
                 const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                 int64_t ldc) {
  cache().run(key(ta, tb, M, N, K, lda, ldb, ldc, beta, false), A, B, C);
}

void onednn_gemm_bf16(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t N, int64_t K,
                      const uint16_t* A, int64_t lda, const uint16_t* B, int64_t ldb, float beta,
                      float* C, int64_t ldc) {
  cache().run(key(ta, tb, M, N, K, lda, ldb, ldc, beta, true), A, B, C);
}

}  // namespace monet::cpu
