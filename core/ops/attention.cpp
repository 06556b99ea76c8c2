// causal_softmax: the row operation at the heart of causal attention, fused. For scores S
// [..., T, Tk] whose query row i sits at absolute position (Tk − T) + i:
//   P_ij = softmax_j(scale · S_ij)  over the keys j ≤ (Tk − T) + i,   P_ij = 0 for later keys.
// One pass per row replaces scale, mask construction, masked_fill and softmax (and their four
// backward passes); the masked part of a row is never exponentiated.
// Backward: dS_ij = scale · P_ij (g_ij − Σ_j' g_ij' P_ij'), zero where masked since P is.
//
// causal_attention: y = causal_softmax(q·kᵀ, scale)·v in one op that never computes the masked
// half. q [..., T, hd], k and v [..., Tk, hd], query i at absolute position (Tk − T) + i. Per
// (batch, head) matrix pair, in parallel over them, the queries go in blocks of kBlock rows: rows
// [r0, r1) see only the keys [0, nk) with nk = (Tk − T) + r1, so
//   S = Q_blk·K_[0,nk)ᵀ,  P_blk = causal_softmax rows of S,  O_blk = P_blk·V_[0,nk)
// are two gemms over the valid blocks (about half of QKᵀ for T = Tk) with the row loop between.
// Backward, with dO the output gradient and P saved (the valid blocks only):
//   dP = dO·Vᵀ,  D_i = Σ_j P_ij dP_ij (= dO_i·O_i),  dS = scale · P ⊙ (dP − D),
//   dQ_blk = dS·K,  dK += dSᵀ·Q_blk,  dV += Pᵀ·dO_blk  over the blocks,
// the softmax row being causal_softmax's backward row. Every gemm goes to cpu::gemm (the mode of
// gemm_mode.h), single-threaded inside the OpenMP loop over (batch, head); views whose last axis
// has unit stride (v is a transpose of the [B, T, H, hd] projection) are passed with their row
// stride as the leading dimension, not copied. A 4-D [B, H, T, hd] output (and the input gradients)
// lies in memory as [B, T, H, hd], so the caller's transpose back to [B, T, H·hd] is free; other
// ranks are dense. On CUDA there is no fused kernel: the op is the composition causal_softmax(q·kᵀ,
// scale)·v, whose matmuls and softmax have CUDA kernels (and autograd).
//
// rotary: RoPE (Su et al. 2021, arXiv 2104.09864) in the rotate-half layout, fused. For a row x at
// position t with halves x₁, x₂: y₁ = x₁cos_t − x₂sin_t, y₂ = x₂cos_t + x₁sin_t — a rotation by
// angle θ_t per pair, so the backward is the rotation by −θ_t: dx = rotary(g, cos, −sin). The input
// may be a strided view (the heads of q, k are a transpose of the projections): it is read in place
// and the output is contiguous, which the attention matmuls want.
#include <cmath>

#include "core/cpu/blas.h"
#include "core/cpu/loops.h"
#include "core/cpu/parallel.h"
#include "core/cpu/rows.h"
#include "core/flops.h"
#include "core/kernel_path.h"
#include "core/ops/common.h"
#ifdef MONET_WITH_CUDA
#include "core/cuda/iteration.h"
#endif

namespace monet {
using namespace detail;

namespace {

// One row of causal_softmax: p[0, valid) = softmax(scale · x[0, valid)), p[valid, n) = 0.
// p may be x (in place).
template <class V>
void causal_row(const V* x, V* p, int64_t valid, int64_t n, V scale) {
  V mx;
  const V inv = static_cast<V>(1.0 / cpu::exp_row(x, p, valid, scale, &mx));
  for (int64_t j = 0; j < valid; ++j) p[j] *= inv;
  for (int64_t j = valid; j < n; ++j) p[j] = V(0);
}

// ---- causal_attention's CPU kernels ----

// Query rows per block. At T = 128 (the bench configs), BM_CausalAttention in
// eval/bench/bench_ops.cpp ran faster with 32 than with 64 (forward hd 64: 2.6 ms against 3.3-3.6;
// forward + backward hd 32: 4.8-4.9 ms against 5.5): 64 computes 75% of q·kᵀ, 32 only 62.5%.
constexpr int64_t kBlock = 32;

// The [..., R, C] matrices of a tensor as gemm takes them: a unit-stride last axis and a row stride
// `ld`, with the element offset of each matrix of the leading axes (a view is copied only when
// its last axis is strided or its rows overlap).
struct Mats {
  Tensor t;
  int64_t ld = 0;
  std::vector<int64_t> at;
  template <class V>
  V* ptr(int64_t i) const {
    return static_cast<V*>(t.storage()->data()) + at[static_cast<size_t>(i)];
  }
};

Mats mats(const Tensor& x) {
  const int64_t R = x.size(-2), C = x.size(-1), rs = x.strides()[x.dim() - 2];
  Mats m{x.detach(), 0, {}};
  if (!(x.strides().back() == 1 || C == 1) || (R > 1 && rs < C)) m.t = m.t.contiguous();
  m.ld = R > 1 ? m.t.strides()[x.dim() - 2] : C;
  Shape lead(x.shape().begin(), x.shape().end() - 2);
  std::vector<int64_t> st(m.t.strides().begin(), m.t.strides().end() - 2);
  cpu::strided_loop<1>(lead, {st}, {m.t.offset()},
                       [&](const std::array<int64_t, 1>& o) { m.at.push_back(o[0]); });
  return m;
}

// An uninitialised tensor of a 4-D [B, H, T, hd] shape laid out as [B, T, H, hd] (the transpose
// of a dense buffer); other ranks are dense.
Tensor empty_heads(const Shape& s, DType dt, Device d) {
  if (s.size() != 4) return empty(s, dt, d);
  return transpose(empty({s[0], s[2], s[1], s[3]}, dt, d), 1, 2);
}

// The query blocks: rows [r0, r0 + m) attend to keys [0, nk); their P is at offset `p` of the
// saved probabilities of one matrix.
struct Block {
  int64_t r0, m, nk, p;
};

struct AttnPlan {
  int64_t n = 0, T = 0, Tk = 0, hd = 0, per = 0;  // matrices, sizes, P elements per matrix
  std::vector<Block> blocks;
  double scale = 1;
  int64_t grain() const {
    return std::max<int64_t>(1, cpu::kRowGrain / std::max<int64_t>(1, T * Tk));
  }
};

AttnPlan plan_attention(const Tensor& q, const Tensor& k, double scale) {
  AttnPlan pl;
  pl.T = q.size(-2);
  pl.Tk = k.size(-2);
  pl.hd = q.size(-1);
  pl.n = q.numel() / std::max<int64_t>(1, pl.T * pl.hd);
  pl.scale = scale;
  for (int64_t r0 = 0; r0 < pl.T; r0 += kBlock) {
    const int64_t m = std::min(kBlock, pl.T - r0), nk = pl.Tk - pl.T + r0 + m;
    pl.blocks.push_back({r0, m, nk, pl.per});
    pl.per += m * nk;
  }
  return pl;
}

// FLOPs of the forward: the two gemms over the valid blocks and the softmax of the valid scores
// (5 per score, as causal_softmax counts); of the backward: the four gemms and 4 per score.
int64_t attention_flops(const AttnPlan& pl, bool backward) {
  int64_t gemm = 0, scores = 0;
  for (const Block& b : pl.blocks) gemm += 2 * b.m * b.nk * pl.hd;
  for (int64_t i = 0; i < pl.T; ++i) scores += pl.Tk - pl.T + i + 1;
  return pl.n * (backward ? 4 * gemm + 4 * scores : 2 * gemm + 5 * scores);
}

// Forward: out = the output's matrices, p = the saved probabilities (pl.n · pl.per elements).
template <class V>
void attention_forward(const GemmMode& mode, const AttnPlan& pl, const Mats& q, const Mats& k,
                       const Mats& v, const Mats& out, V* p) {
  const int64_t off = pl.Tk - pl.T, hd = pl.hd;
  cpu::parallel_for(pl.n, pl.grain(), [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      const V *Q = q.ptr<V>(n), *K = k.ptr<V>(n), *Vv = v.ptr<V>(n);
      V* O = out.ptr<V>(n);
      for (const Block& b : pl.blocks) {
        V* P = p + n * pl.per + b.p;  // [m, nk]
        cpu::gemm(mode, CblasNoTrans, CblasTrans, b.m, b.nk, hd, Q + b.r0 * q.ld, q.ld, K, k.ld,
                  V(0), P, b.nk);
        for (int64_t i = 0; i < b.m; ++i)
          causal_row(P + i * b.nk, P + i * b.nk, off + b.r0 + i + 1, b.nk,
                     static_cast<V>(pl.scale));
        cpu::gemm(mode, CblasNoTrans, CblasNoTrans, b.m, hd, b.nk, P, b.nk, Vv, v.ld, V(0),
                  O + b.r0 * out.ld, out.ld);
      }
    }
  });
}

// Backward: the gradients dq, dk, dv (each may be null: not wanted) from g = dO.
template <class V>
void attention_backward(const GemmMode& mode, const AttnPlan& pl, const Mats& q, const Mats& k,
                        const Mats& v, const V* p, const Mats& g, const Mats* dq, const Mats* dk,
                        const Mats* dv) {
  const int64_t hd = pl.hd;
  const bool need_ds = dq || dk;
  cpu::parallel_for(pl.n, pl.grain(), [&](int64_t n0, int64_t n1) {
    std::vector<V> ds(static_cast<size_t>(need_ds ? std::min(kBlock, pl.T) * pl.Tk : 0));
    for (int64_t n = n0; n < n1; ++n) {
      const V *Q = q.ptr<V>(n), *K = k.ptr<V>(n), *Vv = v.ptr<V>(n), *G = g.ptr<V>(n);
      // The last block sees every key: going backwards, it initialises dK and dV (beta 0).
      V beta = 0;
      for (auto b = pl.blocks.rbegin(); b != pl.blocks.rend(); ++b, beta = 1) {
        const V* P = p + n * pl.per + b->p;
        const V* Gb = G + b->r0 * g.ld;
        if (dv)
          cpu::gemm(mode, CblasTrans, CblasNoTrans, b->nk, hd, b->m, P, b->nk, Gb, g.ld, beta,
                    dv->ptr<V>(n), dv->ld);
        if (!need_ds) continue;
        V* S = ds.data();  // dP, then dS in place: [m, nk]
        cpu::gemm(mode, CblasNoTrans, CblasTrans, b->m, b->nk, hd, Gb, g.ld, Vv, v.ld, V(0), S,
                  b->nk);
        for (int64_t i = 0; i < b->m; ++i)
          cpu::softmax_backward_row(P + i * b->nk, S + i * b->nk, S + i * b->nk, b->nk, pl.scale);
        if (dq)
          cpu::gemm(mode, CblasNoTrans, CblasNoTrans, b->m, hd, b->nk, S, b->nk, K, k.ld, V(0),
                    dq->ptr<V>(n) + b->r0 * dq->ld, dq->ld);
        if (dk)
          cpu::gemm(mode, CblasTrans, CblasNoTrans, b->nk, hd, b->m, S, b->nk, Q + b->r0 * q.ld,
                    q.ld, beta, dk->ptr<V>(n), dk->ld);
      }
    }
  });
}

// The composition the fused op computes: the CUDA path, and empty inputs.
Tensor attention_composition(const Tensor& q, const Tensor& k, const Tensor& v, double scale) {
  return matmul(causal_softmax(matmul(q, transpose(k, -1, -2)), scale), v);
}

#ifdef MONET_WITH_CUDA
// The CUDA path (attention.cu): the same fused forward and backward, one block per row.
Tensor causal_softmax_cuda(const Tensor& s, double scale) {
  cuda::check_dtype("causal_softmax", s);
  Tensor x = s.detach().contiguous(), p = empty_like(x);
  const int64_t T = s.size(-2), Tk = s.size(-1), rows = x.numel() / std::max<int64_t>(Tk, 1);
  flops::count(5 * x.numel() / 2);
  cuda::causal_softmax(x.data<float>(), p.data<float>(), rows, T, Tk, scale);
  Tensor out = reshape(p, s.shape());
  record(out, "causal_softmax", {s}, [pd = p.detach(), scale, shape = s.shape()](const Tensor& g) {
    return std::vector<Tensor>{reshape(softmax_rows_backward(pd, g, scale), shape)};
  });
  return out;
}
#endif

}  // namespace

Tensor rotary(const Tensor& x, const Tensor& cos, const Tensor& sin) {
  const int64_t hd = x.dim() >= 2 ? x.size(-1) : 0, half = hd / 2,
                T = x.dim() >= 2 ? x.size(-2) : 0;
  MONET_CHECK(
      x.dim() >= 2 && hd % 2 == 0 && cos.shape() == (Shape{T, half}) && sin.shape() == cos.shape(),
      "rotary: input {} needs [..., T, hd] with hd even and cos / sin [T, hd/2], got {} / {}",
      shape_str(x.shape()), shape_str(cos.shape()), shape_str(sin.shape()));
  MONET_CHECK(!cos.requires_grad() && !sin.requires_grad(),
              "rotary: cos and sin are constant tables (no gradient flows into them)");
  check_same_device("rotary", x, cos);
  check_same_device("rotary", x, sin);
  const int64_t rows = x.numel() / std::max<int64_t>(hd, 1);
  Tensor c = cos.to(x.dtype()).contiguous(), s = sin.to(x.dtype()).contiguous();
  Tensor y = empty(x.shape(), x.dtype(), x.device());
  flops::count(3 * x.numel());
#ifdef MONET_WITH_CUDA
  if (x.device().is_cuda()) {
    cuda::check_dtype("rotary", x);
    Tensor xc = x.detach().contiguous();
    cuda::rotary(xc.data<float>(), c.data<float>(), s.data<float>(), y.data<float>(), rows, T,
                 half);
  } else
#endif
  {
    check_cpu("rotary", x);
    Tensor xs = x.strides().back() == 1 ? x.detach() : x.detach().contiguous();
    // Element offset of every input row (the leading axes may be strided).
    Shape lead(xs.shape().begin(), xs.shape().end() - 1);
    std::vector<int64_t> st(xs.strides().begin(), xs.strides().end() - 1), offsets;
    offsets.reserve(static_cast<size_t>(rows));
    cpu::strided_loop<1>(lead, {st}, {0},
                         [&](const std::array<int64_t, 1>& p) { offsets.push_back(p[0]); });
    MONET_SWITCH_FLOAT(x.dtype(), "rotary", [&] {
      using V = scalar_t;
      const V *px = xs.data<V>(), *pc = c.data<V>(), *ps = s.data<V>();
      V* py = y.data<V>();
      cpu::parallel_for(rows, cpu::kRowGrain / std::max<int64_t>(hd, 1),
                        [&](int64_t r0, int64_t r1) {
                          for (int64_t r = r0; r < r1; ++r) {
                            const V *x1 = px + offsets[r], *x2 = x1 + half,
                                    *ct = pc + (r % T) * half, *sn = ps + (r % T) * half;
                            V *y1 = py + r * hd, *y2 = y1 + half;
                            for (int64_t i = 0; i < half; ++i) {
                              y1[i] = x1[i] * ct[i] - x2[i] * sn[i];
                              y2[i] = x2[i] * ct[i] + x1[i] * sn[i];
                            }
                          }
                        });
    });
  }
  record(y, "rotary", {x}, [c, s](const Tensor& g) {
    return std::vector<Tensor>{rotary(g, c, neg(s))};  // the inverse rotation
  });
  return y;
}

Tensor causal_softmax(const Tensor& s, double scale) {
  MONET_CHECK(s.dim() >= 2 && s.size(-1) >= s.size(-2),
              "causal_softmax: scores {} need [..., T, Tk] with Tk >= T", shape_str(s.shape()));
#ifdef MONET_WITH_CUDA
  if (s.device().is_cuda()) return causal_softmax_cuda(s, scale);
#endif
  check_cpu("causal_softmax", s);
  Tensor x = s.detach().contiguous(), p = empty_like(x);
  const int64_t T = s.size(-2), Tk = s.size(-1), offset = Tk - T;
  const int64_t rows = x.numel() / std::max<int64_t>(Tk, 1);
  flops::count(5 * x.numel() / 2);
  MONET_SWITCH_FLOAT(s.dtype(), "causal_softmax", [&] {
    using V = scalar_t;
    const V* px = x.data<V>();
    V* pp = p.data<V>();
    cpu::parallel_for(rows, cpu::kRowGrain / std::max<int64_t>(Tk, 1), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t valid = offset + r % T + 1;  // keys 0 .. offset + i
        causal_row(px + r * Tk, pp + r * Tk, valid, Tk, static_cast<V>(scale));
      }
    });
  });
  Tensor out = reshape(p, s.shape());
  record(out, "causal_softmax", {s}, [pd = p.detach(), scale, shape = s.shape()](const Tensor& g) {
    return std::vector<Tensor>{reshape(softmax_rows_backward(pd, g, scale), shape)};
  });
  return out;
}

Tensor causal_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale) {
  const bool ranks = q.dim() >= 2 && k.dim() == q.dim() && v.dim() == q.dim();
  MONET_CHECK(ranks && k.shape() == v.shape() && q.size(-1) == k.size(-1) &&
                  k.size(-2) >= q.size(-2) &&
                  Shape(q.shape().begin(), q.shape().end() - 2) ==
                      Shape(k.shape().begin(), k.shape().end() - 2),
              "causal_attention: q {}, k {}, v {} need q [..., T, hd] and k, v [..., Tk, hd] with "
              "Tk >= T and the same leading axes",
              shape_str(q.shape()), shape_str(k.shape()), shape_str(v.shape()));
  MONET_CHECK(q.dtype() == k.dtype() && q.dtype() == v.dtype(),
              "causal_attention: dtypes differ (q {}, k {}, v {})", dtype_name(q.dtype()),
              dtype_name(k.dtype()), dtype_name(v.dtype()));
  check_same_device("causal_attention", q, k);
  check_same_device("causal_attention", q, v);
  if (!use_fused_kernel(q.device()) || q.numel() == 0) return attention_composition(q, k, v, scale);
  check_cpu("causal_attention", q);
  const AttnPlan pl = plan_attention(q, k, scale);
  const Mats mq = mats(q), mk = mats(k), mv = mats(v);
  Tensor out = empty_heads(q.shape(), q.dtype(), q.device());
  Tensor p = empty({pl.n * pl.per}, q.dtype(), q.device());
  flops::count(attention_flops(pl, false));
  MONET_SWITCH_FLOAT(q.dtype(), "causal_attention", [&] {
    attention_forward<scalar_t>(gemm_mode(), pl, mq, mk, mv, mats(out), p.data<scalar_t>());
  });
  const bool need_q = q.requires_grad(), need_k = k.requires_grad(), need_v = v.requires_grad();
  record(out, "causal_attention", {q, k, v},
         [pl, mq, mk, mv, p, need_q, need_k, need_v](const Tensor& gin) {
           check_cpu("causal_attention backward", gin);
           flops::count(attention_flops(pl, true));
           std::vector<Tensor> grads(3);
           std::vector<Mats> m(3);
           const bool need[3] = {need_q, need_k, need_v};
           const Mats* src[3] = {&mq, &mk, &mv};
           for (int i = 0; i < 3; ++i)
             if (need[i]) {
               grads[i] = empty_heads(src[i]->t.shape(), gin.dtype(), gin.device());
               m[i] = mats(grads[i]);
             }
           const Mats mg = mats(gin);
           MONET_SWITCH_FLOAT(gin.dtype(), "causal_attention backward", [&] {
             attention_backward<scalar_t>(gemm_mode(), pl, mq, mk, mv, p.data<scalar_t>(), mg,
                                          need_q ? &m[0] : nullptr, need_k ? &m[1] : nullptr,
                                          need_v ? &m[2] : nullptr);
           });
           return grads;
         });
  return out;
}

}  // namespace monet
