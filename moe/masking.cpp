#include "moe/masking.h"

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
// H·k1·k2 pairs of the N, so the cost is tokens × (removed ∩ routed) pairs × the expert's size,
// not |S| × tokens: at N = 512² a domain's mask removes tens of thousands of pairs per group.
// Per token, with w_ij = Σ_h ĝ1_hi ĝ2_hj over the removed pairs it reaches:
//   HD  C = Σ_j V_j (Σ_i w_ij a_i) + (Σ_i w_ij) b_j,               a_i = relu²(U_i x + bu_i)
//   VD  C_top    = Σ_i V11_i (s_i a1_i) + V12_i (Σ_j w_ij a2_j) + s_i b1_i,   s_i = Σ_j w_ij
//       C_bottom = Σ_j V21_j (Σ_i w_ij a1_i) + V22_j (t_j a2_j) + t_j b2_j,   t_j = Σ_i w_ij

// Which pairs are removed, as a √N × √N table.
std::vector<uint8_t> pair_table(const ExpertPairs& s, int64_t sqrt_n) {
  std::vector<uint8_t> in(static_cast<size_t>(sqrt_n * sqrt_n), 0);
  for (const auto& [i, j] : s) in[static_cast<size_t>(i * sqrt_n + j)] = 1;
  return in;
}

// relu²(W_i x + b_i) for the `width` rows of block i of W [√N·width, d].
template <class T>
void block_act(const T* W, const T* b, int64_t i, int64_t width, int64_t d, const T* x, T* out) {
  for (int64_t c = 0; c < width; ++c) {
    const T* row = W + (i * width + c) * d;
    T acc = b[i * width + c];
    for (int64_t k = 0; k < d; ++k) acc += row[k] * x[k];
    out[c] = acc > 0 ? acc * acc : T(0);
  }
}

// out[r] += Σ_c V[r, j·width + c] · a[c] for the `rows` rows of V [rows, √N·width].
template <class T>
void block_matvec(const T* V, int64_t j, int64_t width, int64_t rows, int64_t ld, const T* a,
                  T* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* v = V + r * ld + j * width;
    T acc = 0;
    for (int64_t c = 0; c < width; ++c) acc += v[c] * a[c];
    out[r] += acc;
  }
}

// For every token: the removed pairs it routes to, with their weights w_ij. Calls
// `pairs(token, list)` with list of (i, j, w).
template <class T, class F>
void for_routed_pairs(const Routing& r, const std::vector<uint8_t>& removed, F&& pairs) {
  const Tensor g1 = r.g1.contiguous(), g2 = r.g2.contiguous();
  const int64_t S = g1.size(3), H = g1.size(2), n = g1.numel() / (H * S);
  const T *p1 = g1.data<T>(), *p2 = g2.data<T>();
  cpu::parallel_for(n, 1, [&](int64_t t0, int64_t t1) {
    std::vector<int64_t> I1, I2;
    std::vector<std::tuple<int64_t, int64_t, T>> list;
    for (int64_t t = t0; t < t1; ++t) {
      const T *a = p1 + t * H * S, *b = p2 + t * H * S;
      auto routed = [&](const T* g, std::vector<int64_t>& I) {
        I.clear();
        for (int64_t i = 0; i < S; ++i)
          for (int64_t h = 0; h < H; ++h)
            if (g[h * S + i] != T(0)) {
              I.push_back(i);
              break;
            }
      };
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

Tensor hd_contribution_sparse(const Tensor& xin, const HdWeights& w, const Routing& r,
                              const ExpertPairs& s) {
  const int64_t S = w.b.size(0), m = w.u_weight.size(0) / S, d = w.b.size(1);
  const std::vector<uint8_t> removed = pair_table(s, S);
  const Tensor x = xin.contiguous(), U = w.u_weight.contiguous(), bu = w.u_bias.contiguous(),
               V = w.v_weight.contiguous(), b = w.b.contiguous();
  Tensor out = zeros({x.size(0), x.size(1), d}, x.dtype());
  MONET_SWITCH_FLOAT(x.dtype(), "monet masking", [&] {
    using T = scalar_t;
    for_routed_pairs<T>(r, removed, [&](int64_t t, const auto& list) {
      if (list.empty()) return;
      const T* xt = x.data<T>() + t * d;
      T* o = out.data<T>() + t * d;
      std::map<int64_t, std::vector<T>> act, mix;  // a_i; Σ_i w_ij a_i per j
      std::map<int64_t, T> tw;                     // Σ_i w_ij per j
      for (const auto& [i, j, wij] : list) {
        auto [it, fresh] = act.try_emplace(i, std::vector<T>(static_cast<size_t>(m)));
        if (fresh) block_act(U.data<T>(), bu.data<T>(), i, m, d, xt, it->second.data());
        auto& A = mix.try_emplace(j, std::vector<T>(static_cast<size_t>(m), T(0))).first->second;
        for (int64_t c = 0; c < m; ++c) A[c] += wij * it->second[c];
        tw[j] += wij;
      }
      for (const auto& [j, A] : mix) {
        block_matvec(V.data<T>(), j, m, d, S * m, A.data(), o);
        for (int64_t k = 0; k < d; ++k) o[k] += tw[j] * b.data<T>()[j * d + k];
      }
    });
  });
  return out;
}

Tensor vd_contribution_sparse(const Tensor& xin, const VdWeights& w, const Routing& r,
                              const ExpertPairs& s) {
  const int64_t S = w.b1.size(0), hm = w.u1_weight.size(0) / S, h = w.b1.size(1), d = 2 * h;
  const std::vector<uint8_t> removed = pair_table(s, S);
  const Tensor x = xin.contiguous(), U1 = w.u1_weight.contiguous(), c1 = w.u1_bias.contiguous(),
               U2 = w.u2_weight.contiguous(), c2 = w.u2_bias.contiguous(), V11 = w.v11.contiguous(),
               V12 = w.v12.contiguous(), V21 = w.v21.contiguous(), V22 = w.v22.contiguous(),
               b1 = w.b1.contiguous(), b2 = w.b2.contiguous();
  Tensor out = zeros({x.size(0), x.size(1), d}, x.dtype());
  MONET_SWITCH_FLOAT(x.dtype(), "monet masking", [&] {
    using T = scalar_t;
    using Vec = std::vector<T>;
    const size_t W = static_cast<size_t>(hm);
    for_routed_pairs<T>(r, removed, [&](int64_t t, const auto& list) {
      if (list.empty()) return;
      const T* xt = x.data<T>() + t * d;
      T *top = out.data<T>() + t * d, *bottom = top + h;
      std::map<int64_t, Vec> a1, a2, mix2,
          mix1;  // a1_i, a2_j, Σ_j w_ij a2_j (per i), Σ_i w_ij a1_i (per j)
      std::map<int64_t, T> si, tj;
      auto act = [&](std::map<int64_t, Vec>& cache, const Tensor& U, const Tensor& c, int64_t i) {
        auto [it, fresh] = cache.try_emplace(i, Vec(W));
        if (fresh) block_act(U.data<T>(), c.data<T>(), i, hm, d, xt, it->second.data());
        return it->second.data();
      };
      for (const auto& [i, j, wij] : list) {
        const T *x1 = act(a1, U1, c1, i), *x2 = act(a2, U2, c2, j);
        T* m2 = mix2.try_emplace(i, Vec(W, T(0))).first->second.data();
        T* m1 = mix1.try_emplace(j, Vec(W, T(0))).first->second.data();
        for (size_t c = 0; c < W; ++c) m2[c] += wij * x2[c], m1[c] += wij * x1[c];
        si[i] += wij;
        tj[j] += wij;
      }
      Vec scaled(W);
      for (const auto& [i, M2] : mix2) {
        for (size_t c = 0; c < W; ++c) scaled[c] = si[i] * a1[i][c];
        block_matvec(V11.data<T>(), i, hm, h, S * hm, scaled.data(), top);
        block_matvec(V12.data<T>(), i, hm, h, S * hm, M2.data(), top);
        for (int64_t k = 0; k < h; ++k) top[k] += si[i] * b1.data<T>()[i * h + k];
      }
      for (const auto& [j, M1] : mix1) {
        for (size_t c = 0; c < W; ++c) scaled[c] = tj[j] * a2[j][c];
        block_matvec(V21.data<T>(), j, hm, h, S * hm, M1.data(), bottom);
        block_matvec(V22.data<T>(), j, hm, h, S * hm, scaled.data(), bottom);
        for (int64_t k = 0; k < h; ++k) bottom[k] += tj[j] * b2.data<T>()[j * h + k];
      }
    });
  });
  return out;
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
