#include "monet/masking.h"

#include <algorithm>
#include <map>
#include <tuple>
#include <vector>

#include "core/cpu/parallel.h"
#include "core/kernel_path.h"
#include "core/ops.h"
#include "nn/linear.h"

namespace monet::moe {

namespace {

Tensor rows(const Tensor& w, int64_t i, int64_t size) {
  return slice(w, 0, i * size, (i + 1) * size);
}
Tensor cols(const Tensor& w, int64_t i, int64_t size) {
  return slice(w, 1, i * size, (i + 1) * size);
}

// Σ_h ĝ1_hi ĝ2_hj as [B, T, 1].
Tensor pair_score(const Routing& r, int64_t i, int64_t j) {
  Tensor g1 = slice(r.g1, 3, i, i + 1), g2 = slice(r.g2, 3, j, j + 1);  // [B, T, H, 1]
  return sum(mul(g1, g2), {2});                                         // [B, T, 1]
}

void check_pairs(const ExpertPairs& s, int64_t sqrt_n) {
  for (const auto& [i, j] : s)
    MONET_CHECK(i >= 0 && i < sqrt_n && j >= 0 && j < sqrt_n,
                "monet masking: expert ({}, {}) outside [0, {})²", i, j, sqrt_n);
}

// Memoised sub-expert activations: relu²(U_i x + b_i), computed once per index.
struct Activations {
  const Tensor& x;
  const Tensor &weight, &bias;
  int64_t width;
  std::map<int64_t, Tensor> cache;
  const Tensor& operator()(int64_t i) {
    auto it = cache.find(i);
    if (it == cache.end())
      it = cache.emplace(i, relu2(nn::linear(x, rows(weight, i, width), rows(bias, i, width))))
               .first;
    return it->second;
  }
};

// ---- composed (any device): a few ops per removed pair, over every token ----

Tensor hd_contribution_composed(const Tensor& x, const HdWeights& w, const Routing& r,
                                const ExpertPairs& s) {
  const int64_t sqrt_n = w.b.size(0), m = w.u_weight.size(0) / sqrt_n, d = w.b.size(1);
  Tensor out = zeros({x.size(0), x.size(1), d}, x.dtype(), x.device());
  Activations a{x, w.u_weight, w.u_bias, m, {}};
  for (const auto& [i, j] : s) {  // E_ij(x) = V_j relu²(U_i x + b1_i) + b2_j
    Tensor e = add(nn::linear(a(i), cols(w.v_weight, j, m)), reshape(slice(w.b, 0, j, j + 1), {d}));
    out = add(out, mul(pair_score(r, i, j), e));
  }
  return out;
}

Tensor vd_contribution_composed(const Tensor& x, const VdWeights& w, const Routing& r,
                                const ExpertPairs& s) {
  const int64_t sqrt_n = w.b1.size(0), hm = w.u1_weight.size(0) / sqrt_n, h = w.b1.size(1);
  Tensor out = zeros({x.size(0), x.size(1), 2 * h}, x.dtype(), x.device());
  Activations a1{x, w.u1_weight, w.u1_bias, hm, {}}, a2{x, w.u2_weight, w.u2_bias, hm, {}};
  for (const auto& [i, j] : s) {
    // top = V11_i a1_i + V12_i a2_j + b1_i,  bottom = V21_j a1_i + V22_j a2_j + b2_j
    Tensor top =
        add(add(nn::linear(a1(i), cols(w.v11, i, hm)), nn::linear(a2(j), cols(w.v12, i, hm))),
            reshape(slice(w.b1, 0, i, i + 1), {h}));
    Tensor bottom =
        add(add(nn::linear(a1(i), cols(w.v21, j, hm)), nn::linear(a2(j), cols(w.v22, j, hm))),
            reshape(slice(w.b2, 0, j, j + 1), {h}));
    out = add(out, mul(pair_score(r, i, j), concat({top, bottom}, -1)));
  }
  return out;
}

// ---- sparse (CPU): per token, only the removed pairs it routes to ----
//
// A token reaches pair (i, j) only when some head keeps both i and j (ĝ1_hi ĝ2_hj > 0), at most
// H·k1·k2 of the N pairs. With w_ij = Σ_h ĝ1_hi ĝ2_hj over the removed pairs a token reaches, the
// contribution regroups into the layer's own products (all sub-expert activations a = relu²(u x)
// come from one GEMM, as in the forward):
//   HD  C = Z·vᵀ + t·b,        Z_j = Σ_i w_ij a_i,  t_j = Σ_i w_ij
//   VD  C_top    = Z1·v11ᵀ + Z2·v12ᵀ + s·b1,   Z1_i = s_i a1_i,        Z2_i = Σ_j w_ij a2_j
//       C_bottom = Z3·v21ᵀ + Z4·v22ᵀ + t·b2,   Z3_j = Σ_i w_ij a1_i,   Z4_j = t_j a2_j
// with s_i = Σ_j w_ij; only the per-token building of Z, s, t visits pairs. At N = 512² a domain's
// mask removes tens of thousands of pairs per group: a few ops per pair over every token (the
// composed form) would not finish.

// Which pairs are removed, as a √N × √N table.
std::vector<uint8_t> pair_table(const ExpertPairs& s, int64_t sqrt_n) {
  std::vector<uint8_t> in(static_cast<size_t>(sqrt_n * sqrt_n), 0);
  for (const auto& [i, j] : s) in[static_cast<size_t>(i * sqrt_n + j)] = 1;
  return in;
}

// For every token t: pairs(t, list) with the removed pairs it routes to, as (i, j, w_ij).
template <class T, class F>
void for_routed_pairs(const Routing& r, const std::vector<uint8_t>& removed, F&& pairs) {
  const Tensor g1 = r.g1.contiguous(), g2 = r.g2.contiguous();
  const int64_t S = g1.size(3), H = g1.size(2), n = g1.numel() / (H * S);
  const T *p1 = g1.data<T>(), *p2 = g2.data<T>();
  cpu::parallel_for(n, 1, [&](int64_t t0, int64_t t1) {
    std::vector<int64_t> I1, I2;
    std::vector<std::tuple<int64_t, int64_t, T>> list;
    auto routed = [&](const T* g, std::vector<int64_t>& I) {
      I.clear();
      for (int64_t i = 0; i < S; ++i)
        for (int64_t h = 0; h < H; ++h)
          if (g[h * S + i] != T(0)) {
            I.push_back(i);
            break;
          }
    };
    for (int64_t t = t0; t < t1; ++t) {
      const T *a = p1 + t * H * S, *b = p2 + t * H * S;
      routed(a, I1);
      routed(b, I2);
      list.clear();
      for (int64_t i : I1)
        for (int64_t j : I2) {
          if (!removed[static_cast<size_t>(i * S + j)]) continue;
          T w = 0;
          for (int64_t h = 0; h < H; ++h) w += a[h * S + i] * b[h * S + j];
          if (w != T(0)) list.emplace_back(i, j, w);
        }
      pairs(t, list);
    }
  });
}

// dst[t, k-block] += w · src[t, l-block] for blocks of `width`.
template <class T>
void axpy_block(T* dst, int64_t k, const T* src, int64_t l, int64_t width, T w) {
  for (int64_t c = 0; c < width; ++c) dst[k * width + c] += w * src[l * width + c];
}

Tensor hd_contribution_sparse(const Tensor& x, const HdWeights& w, const Routing& r,
                              const ExpertPairs& s) {
  const int64_t S = w.b.size(0), m = w.u_weight.size(0) / S, d = w.b.size(1);
  const int64_t n = x.numel() / d;
  const std::vector<uint8_t> removed = pair_table(s, S);
  const Tensor a = relu2(nn::linear(x, w.u_weight, w.u_bias)).reshape({n, S * m}).contiguous();
  Tensor Z = zeros({n, S * m}, x.dtype()), t = zeros({n, S}, x.dtype());
  MONET_SWITCH_FLOAT(x.dtype(), "monet masking", [&] {
    using T = scalar_t;
    for_routed_pairs<T>(r, removed, [&](int64_t tok, const auto& list) {
      const T* at = a.data<T>() + tok * S * m;
      T *zt = Z.data<T>() + tok * S * m, *tt = t.data<T>() + tok * S;
      for (const auto& [i, j, wij] : list) axpy_block(zt, j, at, i, m, wij), tt[j] += wij;
    });
  });
  Tensor out = add(nn::linear(Z, w.v_weight), matmul(t, w.b));
  return out.reshape({x.size(0), x.size(1), d});
}

Tensor vd_contribution_sparse(const Tensor& x, const VdWeights& w, const Routing& r,
                              const ExpertPairs& s) {
  const int64_t S = w.b1.size(0), hm = w.u1_weight.size(0) / S, h = w.b1.size(1);
  const int64_t n = x.numel() / (2 * h), width = S * hm;
  const std::vector<uint8_t> removed = pair_table(s, S);
  const Tensor a1 = relu2(nn::linear(x, w.u1_weight, w.u1_bias)).reshape({n, width}).contiguous();
  const Tensor a2 = relu2(nn::linear(x, w.u2_weight, w.u2_bias)).reshape({n, width}).contiguous();
  Tensor Z1 = zeros({n, width}, x.dtype()), Z2 = zeros_like(Z1), Z3 = zeros_like(Z1),
         Z4 = zeros_like(Z1), si = zeros({n, S}, x.dtype()), tj = zeros_like(si);
  MONET_SWITCH_FLOAT(x.dtype(), "monet masking", [&] {
    using T = scalar_t;
    for_routed_pairs<T>(r, removed, [&](int64_t tok, const auto& list) {
      const int64_t o = tok * width;
      const T *x1 = a1.data<T>() + o, *x2 = a2.data<T>() + o;
      T *z1 = Z1.data<T>() + o, *z2 = Z2.data<T>() + o, *z3 = Z3.data<T>() + o,
        *z4 = Z4.data<T>() + o, *s_ = si.data<T>() + tok * S, *t_ = tj.data<T>() + tok * S;
      for (const auto& [i, j, wij] : list) {
        axpy_block(z2, i, x2, j, hm, wij);  // Z2_i += w_ij a2_j
        axpy_block(z3, j, x1, i, hm, wij);  // Z3_j += w_ij a1_i
        s_[i] += wij;
        t_[j] += wij;
      }
      for (int64_t i = 0; i < S; ++i) {
        if (s_[i] != T(0)) axpy_block(z1, i, x1, i, hm, s_[i]);  // Z1_i = s_i a1_i
        if (t_[i] != T(0)) axpy_block(z4, i, x2, i, hm, t_[i]);  // Z4_j = t_j a2_j
      }
    });
  });
  Tensor top = add(add(nn::linear(Z1, w.v11), nn::linear(Z2, w.v12)), matmul(si, w.b1));
  Tensor bottom = add(add(nn::linear(Z3, w.v21), nn::linear(Z4, w.v22)), matmul(tj, w.b2));
  return concat({top, bottom}, -1).reshape({x.size(0), x.size(1), 2 * h});
}

}  // namespace

Tensor hd_contribution(const Tensor& x, const HdWeights& w, const Routing& r,
                       const ExpertPairs& s) {
  check_pairs(s, w.b.size(0));
  check_routing("monet masking", r, x, w.b.size(0));
  return use_fused_kernel(x.device()) ? hd_contribution_sparse(x, w, r, s)
                                      : hd_contribution_composed(x, w, r, s);
}

Tensor vd_contribution(const Tensor& x, const VdWeights& w, const Routing& r,
                       const ExpertPairs& s) {
  check_pairs(s, w.b1.size(0));
  check_routing("monet masking", r, x, w.b1.size(0));
  return use_fused_kernel(x.device()) ? vd_contribution_sparse(x, w, r, s)
                                      : vd_contribution_composed(x, w, r, s);
}

Routing mask_subexperts(const Routing& r, const std::vector<int64_t>& removed1,
                        const std::vector<int64_t>& removed2) {
  const int64_t sqrt_n = r.g1.size(-1);
  auto keep = [&](const std::vector<int64_t>& removed) {
    std::vector<double> k(static_cast<size_t>(sqrt_n), 1.0);
    for (int64_t i : removed) {
      MONET_CHECK(i >= 0 && i < sqrt_n, "monet masking: sub-expert {} outside [0, {})", i, sqrt_n);
      k[static_cast<size_t>(i)] = 0.0;
    }
    return from_vector(k, {sqrt_n}).to(r.g1.dtype()).to(r.g1.device());
  };
  return {mul(r.g1, keep(removed1)), mul(r.g2, keep(removed2))};
}

}  // namespace monet::moe
