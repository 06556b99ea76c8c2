// The fused MONET-VD mixing (vd_mix.h): forward and backward kernels, one token at a time, tokens
// split across threads. Names follow vd_mix.h: per token a1, a2 [√N, m], ĝ1, ĝ2 [H, √N].
#include "monet/vd_mix.h"

#include <vector>

#include "core/autograd.h"
#include "core/cpu/parallel.h"
#include "core/error.h"
#include "core/flops.h"
#include "core/ops.h"

namespace monet::moe {

namespace {

struct Dims {
  int64_t tokens, H, S, m;
  int64_t width() const { return 2 * S * m + S; }  // one row of Z[p]
};

// Every inner loop below runs along √N, where each row is contiguous (that is why a and Z hold
// the transposes a1ᵀ, Y11ᵀ, ... [m, √N]). omp simd lets the sums vectorise.
template <class T>
T dot(const T* a, const T* b, int64_t n) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}
template <class T>
void axpy(T alpha, const T* x, T* y, int64_t n) {  // y += alpha·x
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}
template <class T>
void hadamard(const T* a, const T* b, T* y, int64_t n) {  // y = a ⊙ b
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] * b[i];
}

// One token's operands: a1ᵀ, a2ᵀ [m, S], ĝ1, ĝ2 [H, S].
template <class T>
struct Token {
  const T *a1, *a2, *g1, *g2;
};

// The per-token quantities the forward and the backward share: s1, s2 [H], G1, G2 [S], c1, c2 [H,
// m].
template <class T>
struct Mix {
  std::vector<T> s1, s2, G1, G2, c1, c2;
  explicit Mix(const Dims& d) : s1(d.H), s2(d.H), G1(d.S), G2(d.S), c1(d.H * d.m), c2(d.H * d.m) {}

  void compute(const Dims& d, const Token<T>& t) {
    const int64_t H = d.H, S = d.S, m = d.m;
    std::fill(G1.begin(), G1.end(), T(0));
    std::fill(G2.begin(), G2.end(), T(0));
    for (int64_t h = 0; h < H; ++h) {
      T t1 = 0, t2 = 0;
#pragma omp simd reduction(+ : t1, t2)
      for (int64_t i = 0; i < S; ++i) t1 += t.g1[h * S + i], t2 += t.g2[h * S + i];
      s1[h] = t1, s2[h] = t2;
    }
    for (int64_t h = 0; h < H; ++h) {
      axpy(s2[h], t.g1 + h * S, G1.data(), S);  // G1_i = Σ_h ĝ1_hi s2_h
      axpy(s1[h], t.g2 + h * S, G2.data(), S);  // G2_j = Σ_h ĝ2_hj s1_h
      for (int64_t r = 0; r < m; ++r) {
        c1[h * m + r] = dot(t.g1 + h * S, t.a1 + r * S, S);  // c1_h = Σ_i ĝ1_hi a1_i
        c2[h * m + r] = dot(t.g2 + h * S, t.a2 + r * S, S);  // c2_h = Σ_j ĝ2_hj a2_j
      }
    }
  }
};

template <class T>
Token<T> token(const Dims& d, const T* a, const T* g1, const T* g2, int64_t t) {
  const T* a1 = a + t * 2 * d.S * d.m;
  return {a1, a1 + d.S * d.m, g1 + t * d.H * d.S, g2 + t * d.H * d.S};
}

template <class T>
void forward_kernel(const Dims& d, const T* a, const T* g1, const T* g2, T* z) {
  const int64_t H = d.H, S = d.S, m = d.m, W = d.width();
  cpu::parallel_chunks(d.tokens, cpu::kRowGrain / W, [&](int, int64_t t0, int64_t t1) {
    Mix<T> mix(d);
    for (int64_t t = t0; t < t1; ++t) {
      const Token<T> k = token(d, a, g1, g2, t);
      mix.compute(d, k);
      T *z0 = z + t * W, *z1 = z + (d.tokens + t) * W;  // [Y11ᵀ | Y12ᵀ | G1], [Y21ᵀ | Y22ᵀ | G2]
      std::fill(z0 + S * m, z0 + 2 * S * m, T(0));
      std::fill(z1, z1 + S * m, T(0));
      for (int64_t r = 0; r < m; ++r) {
        hadamard(mix.G1.data(), k.a1 + r * S, z0 + r * S, S);        // Y11 = G1 a1
        hadamard(mix.G2.data(), k.a2 + r * S, z1 + (m + r) * S, S);  // Y22 = G2 a2
        for (int64_t h = 0; h < H; ++h) {
          axpy(mix.c2[h * m + r], k.g1 + h * S, z0 + (m + r) * S, S);  // Y12 = Σ_h ĝ1_h c2_h
          axpy(mix.c1[h * m + r], k.g2 + h * S, z1 + r * S, S);        // Y21 = Σ_h ĝ2_h c1_h
        }
      }
      std::copy(mix.G1.begin(), mix.G1.end(), z0 + 2 * S * m);
      std::copy(mix.G2.begin(), mix.G2.end(), z1 + 2 * S * m);
    }
  });
}

// The chain rule through vd_mix.h's lines, bottom to top, one token at a time.
template <class T>
void backward_kernel(const Dims& d, const T* a, const T* g1, const T* g2, const T* dz, T* da,
                     T* dg1, T* dg2) {
  const int64_t H = d.H, S = d.S, m = d.m, W = d.width();
  cpu::parallel_chunks(d.tokens, cpu::kRowGrain / W, [&](int, int64_t t0, int64_t t1) {
    Mix<T> mix(d);
    std::vector<T> dc1(H * m), dc2(H * m), dG1(S), dG2(S);
    for (int64_t t = t0; t < t1; ++t) {
      const Token<T> k = token(d, a, g1, g2, t);
      mix.compute(d, k);
      const T *dz0 = dz + t * W, *dz1 = dz + (d.tokens + t) * W;
      const T *dY11 = dz0, *dY12 = dz0 + S * m, *dY21 = dz1, *dY22 = dz1 + S * m;
      T *da1 = da + t * 2 * S * m, *da2 = da1 + S * m, *q1 = dg1 + t * H * S, *q2 = dg2 + t * H * S;
      // Y11 = G1 a1, Y22 = G2 a2; and G1, G2 also enter Z directly.
      std::copy(dz0 + 2 * S * m, dz0 + 2 * S * m + S, dG1.begin());
      std::copy(dz1 + 2 * S * m, dz1 + 2 * S * m + S, dG2.begin());
      for (int64_t r = 0; r < m; ++r) {
        hadamard(mix.G1.data(), dY11 + r * S, da1 + r * S, S);
        hadamard(mix.G2.data(), dY22 + r * S, da2 + r * S, S);
#pragma omp simd
        for (int64_t i = 0; i < S; ++i) {
          dG1[i] += dY11[r * S + i] * k.a1[r * S + i];
          dG2[i] += dY22[r * S + i] * k.a2[r * S + i];
        }
      }
      std::fill(q1, q1 + H * S, T(0));
      std::fill(q2, q2 + H * S, T(0));
      for (int64_t h = 0; h < H; ++h) {
        T *p1 = q1 + h * S, *p2 = q2 + h * S;
        const T *w1 = k.g1 + h * S, *w2 = k.g2 + h * S;
        for (int64_t r = 0; r < m; ++r) {
          // Y12 = Σ_h ĝ1_h c2_h and Y21 = Σ_h ĝ2_h c1_h: into ĝ and into c.
          axpy(mix.c2[h * m + r], dY12 + r * S, p1, S);
          axpy(mix.c1[h * m + r], dY21 + r * S, p2, S);
          dc2[h * m + r] = dot(w1, dY12 + r * S, S);
          dc1[h * m + r] = dot(w2, dY21 + r * S, S);
          // c1_h = Σ_i ĝ1_hi a1_i and c2_h = Σ_j ĝ2_hj a2_j: into ĝ and into a.
          axpy(dc1[h * m + r], k.a1 + r * S, p1, S);
          axpy(dc2[h * m + r], k.a2 + r * S, p2, S);
          axpy(dc1[h * m + r], w1, da1 + r * S, S);
          axpy(dc2[h * m + r], w2, da2 + r * S, S);
        }
        // G1_i = Σ_h ĝ1_hi s2_h, G2_j = Σ_h ĝ2_hj s1_h.
        axpy(mix.s2[h], dG1.data(), p1, S);
        axpy(mix.s1[h], dG2.data(), p2, S);
      }
      // s1_h = Σ_i ĝ1_hi feeds G2 and s2_h = Σ_j ĝ2_hj feeds G1: ds1_h = Σ_j ĝ2_hj dG2_j, etc.
      for (int64_t h = 0; h < H; ++h) {
        const T ds1 = dot(k.g2 + h * S, dG2.data(), S), ds2 = dot(k.g1 + h * S, dG1.data(), S);
#pragma omp simd
        for (int64_t i = 0; i < S; ++i) q1[h * S + i] += ds1, q2[h * S + i] += ds2;
      }
    }
  });
}

}  // namespace

Tensor vd_mix(const Tensor& a, const Tensor& g1, const Tensor& g2) {
  MONET_CHECK(g1.dim() >= 2 && g1.shape() == g2.shape() && a.dim() == g1.dim() - 1,
              "vd_mix: routing {} / {} must be [..., H, sqrtN] of one shape, activations {} [..., "
              "2·sqrtN·m]",
              shape_str(g1.shape()), shape_str(g2.shape()), shape_str(a.shape()));
  const int64_t H = g1.size(-2), S = g1.size(-1), tokens = g1.numel() / std::max<int64_t>(H * S, 1);
  MONET_CHECK(S > 0 && a.size(-1) % (2 * S) == 0 && a.numel() == tokens * a.size(-1) &&
                  Shape(a.shape().begin(), a.shape().end() - 1) ==
                      Shape(g1.shape().begin(), g1.shape().end() - 2),
              "vd_mix: activations {} do not fit routing {} (need [..., 2·sqrtN·m], sqrtN = {})",
              shape_str(a.shape()), shape_str(g1.shape()), S);
  MONET_CHECK(a.device().is_cpu() && g1.device().is_cpu() && g2.device().is_cpu(),
              "vd_mix: CPU only, got {} / {} / {}", a.device().str(), g1.device().str(),
              g2.device().str());
  MONET_CHECK(a.dtype() == g1.dtype() && a.dtype() == g2.dtype() && is_floating(a.dtype()),
              "vd_mix: dtypes differ or are not floating ({}, {}, {})", dtype_name(a.dtype()),
              dtype_name(g1.dtype()), dtype_name(g2.dtype()));
  const Dims d{tokens, H, S, a.size(-1) / (2 * S)};
  Tensor ac = a.detach().contiguous(), p1 = g1.detach().contiguous(), p2 = g2.detach().contiguous();
  Tensor z = empty({2, tokens, d.width()}, a.dtype());
  flops::count(tokens * (6 * H * S + 8 * H * S * d.m + 2 * S * d.m));
  MONET_SWITCH_FLOAT(a.dtype(), "vd_mix", [&] {
    using T = scalar_t;
    forward_kernel<T>(d, ac.data<T>(), p1.data<T>(), p2.data<T>(), z.data<T>());
  });
  record(z, "vd_mix", {a, g1, g2}, [ac, p1, p2, d, ashape = a.shape()](const Tensor& g) {
    Tensor dz = g.contiguous(), da = empty({d.tokens, 2 * d.S * d.m}, ac.dtype()),
           dg1 = empty_like(p1), dg2 = empty_like(p2);
    flops::count(d.tokens * (16 * d.H * d.S + 20 * d.H * d.S * d.m + 6 * d.S * d.m));
    MONET_SWITCH_FLOAT(ac.dtype(), "vd_mix backward", [&] {
      using T = scalar_t;
      backward_kernel<T>(d, ac.data<T>(), p1.data<T>(), p2.data<T>(), dz.data<T>(), da.data<T>(),
                         dg1.data<T>(), dg2.data<T>());
    });
    return std::vector<Tensor>{reshape(da, ashape), dg1, dg2};
  });
  return z;
}

}  // namespace monet::moe
