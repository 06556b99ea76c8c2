#include "monet/peer.h"

#include <cmath>

#include "core/autograd.h"
#include "core/flops.h"
#include "core/kernel_path.h"
#include "core/ops.h"
#include "monet/registry.h"

namespace monet::moe {

void PeerOptions::validate() const {
  MONET_CHECK(d > 0 && heads > 0 && topk > 0 && d_query > 0,
              "peer: sizes must be positive (d {}, heads {}, topk {}, d_query {})", d, heads, topk,
              d_query);
  MONET_CHECK(sqrt_n > 1 && sqrt_n <= 46340, "peer: sqrt_n {} must be in [2, 46340] (int32 index)",
              sqrt_n);
  MONET_CHECK(topk <= sqrt_n, "peer: topk {} must be at most sqrt_n = {}", topk, sqrt_n);
  MONET_CHECK(d_query % 2 == 0, "peer: d_query {} must be even (the query splits in two halves)",
              d_query);
  MONET_CHECK(activation == nn::Activation::GELU || activation == nn::Activation::ReLU,
              "peer: activation '{}' must be gelu or relu", nn::activation_name(activation));
}

std::string peer_score_name(PeerScore s) {
  return s == PeerScore::Softmax ? "softmax" : "sigmoid";
}

namespace {

// Flat expert index of each kept candidate: candidate c = a·k + b stands for sub-keys i1[a] and
// i2[b], i.e. expert i1[a]·√N + i2[b]. Integer bookkeeping, no gradient: done on the host.
Tensor candidate_experts(const Tensor& i1, const Tensor& i2, const Tensor& c, int64_t k,
                         int64_t sqrt_n) {
  const std::vector<int32_t> a1 = i1.to_vector<int32_t>(), a2 = i2.to_vector<int32_t>(),
                             cc = c.to_vector<int32_t>();
  std::vector<int32_t> out(cc.size());
  for (size_t r = 0; r < cc.size() / k; ++r)
    for (int64_t s = 0; s < k; ++s) {
      const int32_t cand = cc[r * k + s];
      out[r * k + s] = static_cast<int32_t>(a1[r * k + cand / k] * sqrt_n + a2[r * k + cand % k]);
    }
  return from_vector(out, c.shape(), c.device());
}

}  // namespace

PeerRetrieval product_key_topk(const Tensor& q, const Tensor& keys1, const Tensor& keys2,
                               int64_t k) {
  const int64_t dq = q.size(-1), sqrt_n = keys1.size(0);
  MONET_CHECK(q.dim() == 4 && dq % 2 == 0 && keys1.dim() == 2 && keys1.size(1) == dq / 2 &&
                  keys2.shape() == keys1.shape(),
              "peer: query {} and sub-keys {} / {} do not match (want [B, T, h, d_q], [√N, d_q/2])",
              shape_str(q.shape()), shape_str(keys1.shape()), shape_str(keys2.shape()));
  MONET_CHECK(k >= 1 && k <= sqrt_n, "peer: topk {} out of range [1, {}]", k, sqrt_n);
  // s1 = q1·Cᵀ, s2 = q2·C′ᵀ  [B, T, h, √N]; the top k of each half.
  Tensor s1 = matmul(slice(q, -1, 0, dq / 2), transpose(keys1, 0, 1));
  Tensor s2 = matmul(slice(q, -1, dq / 2, dq), transpose(keys2, 0, 1));
  auto [v1, i1] = topk(s1, k);
  auto [v2, i2] = topk(s2, k);
  // The k² candidates: score v1[a] + v2[b] at position a·k + b  [B, T, h, k²]; their top k (Eq. 1).
  Shape shape = v1.shape();
  shape.back() = k * k;
  Tensor cand = add(unsqueeze(v1, -1), unsqueeze(v2, -2)).reshape(shape);
  auto [scores, c] = topk(cand, k);
  return {scores, candidate_experts(i1, i2, c, k, sqrt_n)};
}

Tensor peer_gates(const Tensor& scores, PeerScore score) {
  return score == PeerScore::Softmax ? softmax(scores, -1) : sigmoid(scores);
}

namespace {

void check_experts_args(const Tensor& x, const Tensor& u, const Tensor& v, const Tensor& indices,
                        const Tensor& gates) {
  MONET_CHECK(x.dim() == 3 && u.dim() == 2 && u.shape() == v.shape() && u.size(1) == x.size(2),
              "peer: input {} and expert tables u {} / v {} do not match (want [B, T, d], [N, d])",
              shape_str(x.shape()), shape_str(u.shape()), shape_str(v.shape()));
  MONET_CHECK(indices.dim() == 4 && indices.shape() == gates.shape() &&
                  indices.size(0) == x.size(0) && indices.size(1) == x.size(1),
              "peer: indices {} and gates {} must both be [B, T, h, k] for input {}",
              shape_str(indices.shape()), shape_str(gates.shape()), shape_str(x.shape()));
}

// ---- fused CPU ops over retrieved rows (w [N, d], ids int32 [M, J], never gathered) ----
//   gather_dot:     z[m, j] = w[ids[m, j]] · x[m]                    [M, J]
//   gather_combine: y[m]    = Σ_j a[m, j] w[ids[m, j]]               [M, d]
//   scatter_outer:  G[n]    = Σ_{ids[m, j] = n} a[m, j] y[m]         [N, d]
// Each one's backward is made of the others (scatter_outer is only used in backward):
//   gather_dot:     dw = scatter_outer(ids, dz, x),  dx = gather_combine(w, ids, dz)
//   gather_combine: dw = scatter_outer(ids, a, dy),  da = gather_dot(w, ids, dy)
// Loops run in (m, j) order, so the scatter is deterministic (no atomics). Each counts 2·M·J·d
// FLOPs, as the batched matmuls of peer_experts_gather do.

template <class F>
void dispatch_float(DType t, const char* op, F&& f) {
  if (t == DType::F32) return f(float{});
  MONET_CHECK(t == DType::F64, "{}: dtype {} is not F32 or F64", op, dtype_name(t));
  f(double{});
}

void check_rows(const char* op, const Tensor& w, const Tensor& ids, const Tensor& other) {
  MONET_CHECK(w.device().is_cpu() && ids.device().is_cpu() && other.device().is_cpu(),
              "{}: the fused PEER ops run on the CPU (got {})", op, w.device().str());
  MONET_CHECK(w.dim() == 2 && ids.dim() == 2 && ids.dtype() == DType::I32 && other.dim() == 2 &&
                  other.size(0) == ids.size(0) && w.dtype() == other.dtype(),
              "{}: table {} ({}), ids {} ({}), operand {} ({}) do not fit", op,
              shape_str(w.shape()), dtype_name(w.dtype()), shape_str(ids.shape()),
              dtype_name(ids.dtype()), shape_str(other.shape()), dtype_name(other.dtype()));
  const Tensor ic = ids.contiguous();
  const int32_t* p = ic.data<int32_t>();
  for (int64_t i = 0; i < ic.numel(); ++i)
    MONET_CHECK(p[i] >= 0 && p[i] < w.size(0), "{}: expert index {} out of range [0, {})", op, p[i],
                w.size(0));
}

Tensor gather_combine(const Tensor& w, const Tensor& ids, const Tensor& a);

// u·x with eight running sums (a fixed order, so deterministic; the compiler vectorises it).
template <class S>
S dot(const S* a, const S* b, int64_t n) {
  S acc[8] = {};
  int64_t c = 0;
  for (; c + 8 <= n; c += 8)
    for (int l = 0; l < 8; ++l) acc[l] += a[c + l] * b[c + l];
  S s = 0;
  for (int l = 0; l < 8; ++l) s += acc[l];
  for (; c < n; ++c) s += a[c] * b[c];
  return s;
}

Tensor scatter_outer(int64_t n, const Tensor& ids, const Tensor& a, const Tensor& y) {
  Tensor ic = ids.contiguous(), ac = a.detach().contiguous(), yc = y.detach().contiguous();
  const int64_t M = ic.size(0), J = ic.size(1), d = yc.size(1);
  Tensor out = zeros({n, d}, yc.dtype());
  flops::count(2 * M * J * d);
  dispatch_float(yc.dtype(), "peer scatter_outer", [&](auto tag) {
    using S = decltype(tag);
    const int32_t* pi = ic.data<int32_t>();
    const S *pa = ac.data<S>(), *py = yc.data<S>();
    S* po = out.data<S>();
    for (int64_t m = 0; m < M; ++m)
      for (int64_t j = 0; j < J; ++j) {
        const S s = pa[m * J + j];
        S* row = po + static_cast<int64_t>(pi[m * J + j]) * d;
        for (int64_t c = 0; c < d; ++c) row[c] += s * py[m * d + c];
      }
  });
  return out;
}

Tensor gather_dot(const Tensor& w, const Tensor& ids, const Tensor& x) {
  check_rows("peer gather_dot", w, ids, x);
  MONET_CHECK(x.size(1) == w.size(1), "peer gather_dot: rows of width {} against x {}", w.size(1),
              shape_str(x.shape()));
  Tensor wc = w.detach().contiguous(), ic = ids.contiguous(), xc = x.detach().contiguous();
  const int64_t M = ic.size(0), J = ic.size(1), d = xc.size(1);
  Tensor z = empty({M, J}, xc.dtype());
  flops::count(2 * M * J * d);
  dispatch_float(xc.dtype(), "peer gather_dot", [&](auto tag) {
    using S = decltype(tag);
    const int32_t* pi = ic.data<int32_t>();
    const S *pw = wc.data<S>(), *px = xc.data<S>();
    S* pz = z.data<S>();
    for (int64_t m = 0; m < M; ++m)
      for (int64_t j = 0; j < J; ++j) {
        pz[m * J + j] = dot(pw + static_cast<int64_t>(pi[m * J + j]) * d, px + m * d, d);
      }
  });
  record(z, "peer_gather_dot", {w, x}, [w = w.detach(), ic, x = x.detach()](const Tensor& g) {
    return std::vector<Tensor>{scatter_outer(w.size(0), ic, g, x), gather_combine(w, ic, g)};
  });
  return z;
}

Tensor gather_combine(const Tensor& w, const Tensor& ids, const Tensor& a) {
  check_rows("peer gather_combine", w, ids, a);
  MONET_CHECK(a.size(1) == ids.size(1), "peer gather_combine: weights {} for ids {}",
              shape_str(a.shape()), shape_str(ids.shape()));
  Tensor wc = w.detach().contiguous(), ic = ids.contiguous(), ac = a.detach().contiguous();
  const int64_t M = ic.size(0), J = ic.size(1), d = wc.size(1);
  Tensor y = zeros({M, d}, wc.dtype());
  flops::count(2 * M * J * d);
  dispatch_float(wc.dtype(), "peer gather_combine", [&](auto tag) {
    using S = decltype(tag);
    const int32_t* pi = ic.data<int32_t>();
    const S *pw = wc.data<S>(), *pa = ac.data<S>();
    S* py = y.data<S>();
    for (int64_t m = 0; m < M; ++m)
      for (int64_t j = 0; j < J; ++j) {
        const S s = pa[m * J + j];
        const S* row = pw + static_cast<int64_t>(pi[m * J + j]) * d;
        for (int64_t c = 0; c < d; ++c) py[m * d + c] += s * row[c];
      }
  });
  record(y, "peer_gather_combine", {w, a}, [w = w.detach(), ic, a = a.detach()](const Tensor& g) {
    return std::vector<Tensor>{scatter_outer(w.size(0), ic, a, g), gather_dot(w, ic, g)};
  });
  return y;
}

}  // namespace

Tensor peer_experts_gather(const Tensor& x, const Tensor& u, const Tensor& v, const Tensor& indices,
                           const Tensor& gates, nn::Activation activation) {
  check_experts_args(x, u, v, indices, gates);
  const int64_t B = x.size(0), T = x.size(1), d = x.size(2);
  const int64_t hk = indices.size(2) * indices.size(3);
  Tensor ids = indices.reshape({B, T, hk});
  Tensor U = embedding(u, ids), V = embedding(v, ids);            // [B, T, hk, d] rows u_j, v_j
  Tensor z = matmul(U, unsqueeze(x, -1)).reshape({B, T, 1, hk});  // u_jᵀ x
  Tensor a = mul(nn::activate(z, activation), gates.reshape({B, T, 1, hk}));  // g_hj σ(u_jᵀ x)
  return matmul(a, V).reshape({B, T, d});  // Σ_h Σ_j g_hj σ(u_jᵀ x) v_j
}

Tensor peer_experts_fused(const Tensor& x, const Tensor& u, const Tensor& v, const Tensor& indices,
                          const Tensor& gates, nn::Activation activation) {
  check_experts_args(x, u, v, indices, gates);
  const int64_t B = x.size(0), T = x.size(1), d = x.size(2);
  const int64_t hk = indices.size(2) * indices.size(3);
  Tensor ids = indices.reshape({B * T, hk});
  Tensor z = gather_dot(u, ids, x.reshape({B * T, d}));  // u_jᵀ x      [BT, hk]
  Tensor a = mul(nn::activate(z, activation), gates.reshape({B * T, hk}));  // g_hj σ(u_jᵀ x)
  return gather_combine(v, ids, a).reshape({B, T, d});                      // Σ_j a_j v_j
}

Tensor peer_experts(const Tensor& x, const Tensor& u, const Tensor& v, const Tensor& indices,
                    const Tensor& gates, nn::Activation activation) {
  return use_fused_kernel(x.device()) ? peer_experts_fused(x, u, v, indices, gates, activation)
                                      : peer_experts_gather(x, u, v, indices, gates, activation);
}

PeerFeedForward::PeerFeedForward(const PeerOptions& o, Generator& gen, const nn::ParamOptions& opt)
    : o_(o) {
  o.validate();
  query_ = register_module("query",
                           std::make_shared<nn::Linear>(o.d, o.heads * o.d_query, false, gen, opt));
  if (o.query_batchnorm)
    norm_ = register_module("query_norm", std::make_shared<RunningStats>(o.heads * o.d_query, opt));
  keys1_ = register_parameter("keys1", nn::init_normal({o.sqrt_n, o.d_query / 2}, gen, opt));
  keys2_ = register_parameter("keys2", nn::init_normal({o.sqrt_n, o.d_query / 2}, gen, opt));
  u_ = register_parameter("u", nn::init_normal({o.num_experts(), o.d}, gen, opt));
  v_ = register_parameter("v", nn::init_normal({o.num_experts(), o.d}, gen, opt));
}

TokenScores PeerFeedForward::expert_scores() const {
  MONET_CHECK(last_.indices.defined(), "peer: no retrieval yet (run a forward pass first)");
  const int64_t hk = last_.indices.size(2) * last_.indices.size(3);
  const int64_t n = last_.indices.numel() / hk;
  const std::vector<int32_t> idx = last_.indices.to_vector<int32_t>();
  const std::vector<float> g = last_.gates.to_vector<float>();
  TokenScoresBuilder out(o_.num_experts());
  for (int64_t t = 0; t < n; ++t) {  // Σ over the heads that retrieved the singleton
    for (int64_t c = 0; c < hk; ++c) out.add(idx[t * hk + c], g[t * hk + c]);
    out.end_token();
  }
  return out.take();
}

void PeerFeedForward::remove_experts(const std::vector<int64_t>& experts) {
  const int64_t n = o_.num_experts();
  for (int64_t e : experts)
    MONET_CHECK(e >= 0 && e < n, "peer: removed expert {} outside [0, {})", e, n);
  removed_.clear();
  if (experts.empty()) return;
  removed_.assign(static_cast<size_t>(n), 0);
  for (int64_t e : experts) removed_[static_cast<size_t>(e)] = 1;
}

Tensor PeerFeedForward::forward(const Tensor& x) {
  MONET_CHECK(x.dim() == 3 && x.size(2) == o_.d, "peer layer: input {} is not [B, T, {}]",
              shape_str(x.shape()), o_.d);
  const int64_t B = x.size(0), T = x.size(1);
  Tensor q;
  {
    FlopScope scope(nn::kFlopsQuery);
    q = query_->forward(x);  // [B, T, h·d_q]
    if (norm_) q = batch_norm(q, 2, norm_->running_mean, norm_->running_var, is_training());
  }
  FlopScope scope(nn::kFlopsRetrieval);
  PeerRetrieval r =
      product_key_topk(q.reshape({B, T, o_.heads, o_.d_query}), keys1_, keys2_, o_.topk);
  Tensor g = peer_gates(r.scores, o_.score);
  last_ = {r.indices, r.scores.detach(), g.detach()};
  if (!removed_.empty()) {  // drop the removed experts' terms: g_hj → exactly 0
    const std::vector<int32_t> ids = r.indices.to_vector<int32_t>();
    std::vector<float> keep(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) keep[i] = removed_[ids[i]] ? 0.0f : 1.0f;
    g = mul(g, from_vector(keep, r.indices.shape()).to(g.dtype()).to(g.device()));
  }
  FlopScope experts(nn::kFlopsExperts);
  return peer_experts(x, u_, v_, r.indices, g, o_.activation);
}

std::vector<std::pair<std::string, double>> PeerFeedForward::metrics() const {
  if (!last_.indices.defined()) return {};
  const std::vector<int32_t> ids = last_.indices.to_vector<int32_t>();
  const int64_t n = o_.num_experts();
  std::vector<int64_t> count(n, 0);
  for (int32_t e : ids) ++count[e];
  // KL(p ‖ uniform) = Σ_i p_i log(p_i · N), over the experts with p_i > 0.
  int64_t used = 0;
  double kl = 0;
  const double total = static_cast<double>(ids.size());
  for (int64_t c : count) {
    if (c == 0) continue;
    ++used;
    const double p = static_cast<double>(c) / total;
    kl += p * std::log(p * static_cast<double>(n));
  }
  return {{"expert_usage", static_cast<double>(used) / static_cast<double>(n)},
          {"expert_unevenness", kl}};
}

// ---- the registry row (monet/registry.h) ----

namespace {
// docs/math/peer.md §3: √N sub-keys per half (N = √N² singleton experts), h heads, k experts per
// head, query width d_q, σ of the experts, score normaliser, query BatchNorm.
const std::vector<Field<PeerOptions>>& peer_fields() {
  using O = PeerOptions;
  static const std::vector<Field<O>> f = {
      int_field("sqrt_n", &O::sqrt_n, d_over(2), 1, "√N sub-keys per half (N = √N² experts)"),
      int_field("heads", &O::heads, fixed(8), 1, "h retrieval heads"),
      int_field("topk", &O::topk, fixed(16), 1, "k experts per head"),
      int_field("d_query", &O::d_query, d_over(2), 1, "d_q, query width per head (even)"),
      choice_field("activation", &O::activation, nn::Activation::GELU,
                   {nn::Activation::GELU, nn::Activation::ReLU}, nn::activation_name,
                   "σ of the singleton experts"),
      choice_field("score", &O::score, PeerScore::Softmax, {PeerScore::Softmax, PeerScore::Sigmoid},
                   peer_score_name, "s of Eq. 2 over a head's k scores"),
      flag_field("query_batchnorm", &O::query_batchnorm, true, "BatchNorm on the query"),
  };
  return f;
}
}  // namespace

PeerOptions PeerOptions::defaults(int64_t d) {
  return options_at(peer_fields(), d);
}

const FfnKind& peer_kind() {
  static const FfnKind k = [] {
    FfnKind r = make_kind<PeerOptions>(
        "peer", "PEER", "PEER: product-key retrieval of singleton experts (He 2024)", peer_fields(),
        [](const PeerOptions& o, const BuildContext& c) -> FeedForwardFactory {
          return [o, c](int) { return std::make_shared<PeerFeedForward>(o, *c.init, c.param); };
        });
    r.has_experts = true;
    r.is_expert_param = [](std::string_view name) { return name == "u" || name == "v"; };
    r.n_key = "sqrt_n";
    r.table1 = FfnKind::Exponents{0.5, 1.0};
    r.many_experts = true;
    r.sweep = [](int64_t sqrt_n) {  // Table 1: 8 heads of 16 experts, d_q 128
      return nlohmann::json{{"sqrt_n", sqrt_n}, {"heads", 8}, {"topk", 16}, {"d_query", 128}};
    };
    return r;
  }();
  return k;
}

}  // namespace monet::moe
