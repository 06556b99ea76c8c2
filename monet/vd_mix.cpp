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

// Per-token quantities shared by the forward and the backward: s1, s2 (H), G1, G2 (S), c1, c2
// (H·m).
template <class T>
struct Mix {
  std::vector<T> s1, s2, G1, G2, c1, c2;
  explicit Mix(const Dims& d) : s1(d.H), s2(d.H), G1(d.S), G2(d.S), c1(d.H * d.m), c2(d.H * d.m) {}

  void compute(const Dims& d, const T* a1, const T* a2, const T* g1, const T* g2) {
    const int64_t H = d.H, S = d.S, m = d.m;
    for (int64_t h = 0; h < H; ++h) {
      T t1 = 0, t2 = 0;
      for (int64_t i = 0; i < S; ++i) t1 += g1[h * S + i], t2 += g2[h * S + i];
      s1[h] = t1, s2[h] = t2;
    }
    for (int64_t i = 0; i < S; ++i) {
      T t1 = 0, t2 = 0;
      for (int64_t h = 0; h < H; ++h) t1 += g1[h * S + i] * s2[h], t2 += g2[h * S + i] * s1[h];
      G1[i] = t1, G2[i] = t2;
    }
    std::fill(c1.begin(), c1.end(), T(0));
    std::fill(c2.begin(), c2.end(), T(0));
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < S; ++i) {
        const T w1 = g1[h * S + i], w2 = g2[h * S + i];
        for (int64_t r = 0; r < m; ++r) {
          c1[h * m + r] += w1 * a1[i * m + r];
          c2[h * m + r] += w2 * a2[i * m + r];
        }
      }
  }
};

// Y[i] = Σ_h g[h, i] c[h]  (rows of m), for i < S.
template <class T>
void mix_rows(const Dims& d, const T* g, const T* c, T* y) {
  for (int64_t i = 0; i < d.S; ++i) {
    T* yi = y + i * d.m;
    std::fill(yi, yi + d.m, T(0));
    for (int64_t h = 0; h < d.H; ++h) {
      const T w = g[h * d.S + i];
      for (int64_t r = 0; r < d.m; ++r) yi[r] += w * c[h * d.m + r];
    }
  }
}

template <class T>
void forward_kernel(const Dims& d, const T* a, const T* g1, const T* g2, T* z) {
  const int64_t S = d.S, m = d.m, HS = d.H * S, W = d.width();
  cpu::parallel_chunks(d.tokens, cpu::kRowGrain / W, [&](int, int64_t t0, int64_t t1) {
    Mix<T> mix(d);
    for (int64_t t = t0; t < t1; ++t) {
      const T *a1 = a + t * 2 * S * m, *a2 = a1 + S * m, *p1 = g1 + t * HS, *p2 = g2 + t * HS;
      mix.compute(d, a1, a2, p1, p2);
      T *z0 = z + t * W, *z1 = z + (d.tokens + t) * W;
      for (int64_t i = 0; i < S; ++i)
        for (int64_t r = 0; r < m; ++r) {
          z0[i * m + r] = mix.G1[i] * a1[i * m + r];          // Y11
          z1[S * m + i * m + r] = mix.G2[i] * a2[i * m + r];  // Y22
        }
      mix_rows(d, p1, mix.c2.data(), z0 + S * m);  // Y12
      mix_rows(d, p2, mix.c1.data(), z1);          // Y21
      std::copy(mix.G1.begin(), mix.G1.end(), z0 + 2 * S * m);
      std::copy(mix.G2.begin(), mix.G2.end(), z1 + 2 * S * m);
    }
  });
}

// The chain rule through vd_mix.h's lines, bottom to top, for one token at a time.
template <class T>
void backward_kernel(const Dims& d, const T* a, const T* g1, const T* g2, const T* dz, T* da,
                     T* dg1, T* dg2) {
  const int64_t H = d.H, S = d.S, m = d.m, HS = H * S, W = d.width();
  cpu::parallel_chunks(d.tokens, cpu::kRowGrain / W, [&](int, int64_t t0, int64_t t1) {
    Mix<T> mix(d);
    std::vector<T> dc1(H * m), dc2(H * m), dG1(S), dG2(S), ds1(H), ds2(H);
    for (int64_t t = t0; t < t1; ++t) {
      const T *a1 = a + t * 2 * S * m, *a2 = a1 + S * m, *p1 = g1 + t * HS, *p2 = g2 + t * HS;
      mix.compute(d, a1, a2, p1, p2);
      const T *dz0 = dz + t * W, *dz1 = dz + (d.tokens + t) * W;
      const T *dY11 = dz0, *dY12 = dz0 + S * m, *dY21 = dz1, *dY22 = dz1 + S * m;
      T *da1 = da + t * 2 * S * m, *da2 = da1 + S * m, *q1 = dg1 + t * HS, *q2 = dg2 + t * HS;
      // Y11 = G1 a1, Y22 = G2 a2; and G1, G2 also enter Z directly.
      for (int64_t i = 0; i < S; ++i) {
        T e1 = dz0[2 * S * m + i], e2 = dz1[2 * S * m + i];
        for (int64_t r = 0; r < m; ++r) {
          da1[i * m + r] = mix.G1[i] * dY11[i * m + r];
          da2[i * m + r] = mix.G2[i] * dY22[i * m + r];
          e1 += dY11[i * m + r] * a1[i * m + r];
          e2 += dY22[i * m + r] * a2[i * m + r];
        }
        dG1[i] = e1, dG2[i] = e2;
      }
      // Y12_i = Σ_h ĝ1_hi c2_h, Y21_j = Σ_h ĝ2_hj c1_h.
      std::fill(dc1.begin(), dc1.end(), T(0));
      std::fill(dc2.begin(), dc2.end(), T(0));
      for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < S; ++i) {
          T e1 = 0, e2 = 0;
          const T w1 = p1[h * S + i], w2 = p2[h * S + i];
          for (int64_t r = 0; r < m; ++r) {
            e1 += dY12[i * m + r] * mix.c2[h * m + r];
            e2 += dY21[i * m + r] * mix.c1[h * m + r];
            dc2[h * m + r] += w1 * dY12[i * m + r];
            dc1[h * m + r] += w2 * dY21[i * m + r];
          }
          q1[h * S + i] = e1, q2[h * S + i] = e2;
        }
      // c1_h = Σ_i ĝ1_hi a1_i, c2_h = Σ_j ĝ2_hj a2_j.
      for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < S; ++i) {
          T e1 = 0, e2 = 0;
          const T w1 = p1[h * S + i], w2 = p2[h * S + i];
          for (int64_t r = 0; r < m; ++r) {
            e1 += dc1[h * m + r] * a1[i * m + r];
            e2 += dc2[h * m + r] * a2[i * m + r];
            da1[i * m + r] += w1 * dc1[h * m + r];
            da2[i * m + r] += w2 * dc2[h * m + r];
          }
          q1[h * S + i] += e1, q2[h * S + i] += e2;
        }
      // G1_i = Σ_h ĝ1_hi s2_h, G2_j = Σ_h ĝ2_hj s1_h; then s1_h = Σ_i ĝ1_hi, s2_h = Σ_j ĝ2_hj.
      for (int64_t h = 0; h < H; ++h) {
        T e2 = 0, e1 = 0;
        for (int64_t i = 0; i < S; ++i) {
          q1[h * S + i] += dG1[i] * mix.s2[h];
          q2[h * S + i] += dG2[i] * mix.s1[h];
          e2 += p1[h * S + i] * dG1[i];
          e1 += p2[h * S + i] * dG2[i];
        }
        ds2[h] = e2, ds1[h] = e1;
      }
      for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < S; ++i) q1[h * S + i] += ds1[h], q2[h * S + i] += ds2[h];
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
  MONET_DISPATCH_FLOAT(a.dtype(), "vd_mix", [&] {
    using T = scalar_t;
    forward_kernel<T>(d, ac.data<T>(), p1.data<T>(), p2.data<T>(), z.data<T>());
  });
  record(z, "vd_mix", {a, g1, g2}, [ac, p1, p2, d, ashape = a.shape()](const Tensor& g) {
    Tensor dz = g.contiguous(), da = empty({d.tokens, 2 * d.S * d.m}, ac.dtype()),
           dg1 = empty_like(p1), dg2 = empty_like(p2);
    flops::count(d.tokens * (16 * d.H * d.S + 20 * d.H * d.S * d.m + 6 * d.S * d.m));
    MONET_DISPATCH_FLOAT(ac.dtype(), "vd_mix backward", [&] {
      using T = scalar_t;
      backward_kernel<T>(d, ac.data<T>(), p1.data<T>(), p2.data<T>(), dz.data<T>(), da.data<T>(),
                         dg1.data<T>(), dg2.data<T>());
    });
    return std::vector<Tensor>{reshape(da, ashape), dg1, dg2};
  });
  return z;
}

}  // namespace monet::moe
