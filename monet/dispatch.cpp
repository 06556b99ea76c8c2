#include "monet/dispatch.h"

#include <cmath>

#include "core/autograd.h"
#include "core/ops.h"

namespace monet::moe {

namespace {

struct Sizes {
  int64_t n, k, d, m, experts;
};

// The shapes every dispatch needs; returns (n, k, d, m, E).
Sizes check_inputs(const char* op, const Tensor& x, const Tensor& idx, const Tensor& gates,
                   const ExpertWeights& w) {
  MONET_CHECK(x.dim() == 2 && x.size(0) > 0, "{}: x must be [n > 0, d], got {}", op,
              shape_str(x.shape()));
  MONET_CHECK(idx.dim() == 2 && idx.size(0) == x.size(0) && idx.dtype() == DType::I32,
              "{}: idx must be int32 [n = {}, k], got {} {}", op, x.size(0),
              dtype_name(idx.dtype()), shape_str(idx.shape()));
  MONET_CHECK(gates.shape() == idx.shape() && gates.dtype() == x.dtype(),
              "{}: gates {} {} must match idx {} and x's dtype {}", op, dtype_name(gates.dtype()),
              shape_str(gates.shape()), shape_str(idx.shape()), dtype_name(x.dtype()));
  MONET_CHECK(w.w1.dim() == 3 && w.w2.dim() == 3 && w.w1.size(2) == x.size(1) &&
                  w.w2.size(0) == w.w1.size(0) && w.w2.size(1) == x.size(1) &&
                  w.w2.size(2) == w.w1.size(1),
              "{}: expert weights w1 {} / w2 {} are not [E, m, d] / [E, d, m] for x {}", op,
              shape_str(w.w1.shape()), shape_str(w.w2.shape()), shape_str(x.shape()));
  return {x.size(0), idx.size(1), x.size(1), w.w1.size(1), w.w1.size(0)};
}

}  // namespace

ExpertSort sort_by_expert(const std::vector<int32_t>& idx, int64_t experts) {
  ExpertSort s;
  s.counts.assign(experts, 0);
  for (int32_t e : idx)  // histogram
    if (e >= 0) ++s.counts[e];
  s.offsets.assign(experts + 1, 0);
  for (int64_t e = 0; e < experts; ++e) s.offsets[e + 1] = s.offsets[e] + s.counts[e];  // prefix
  std::vector<int64_t> next(s.offsets.begin(), s.offsets.end() - 1);
  s.order.assign(s.rows(), 0);
  s.row.assign(idx.size(), -1);
  for (size_t p = 0; p < idx.size(); ++p) {  // stable scatter: pairs in increasing p
    if (idx[p] < 0) continue;
    const int64_t r = next[idx[p]]++;
    s.order[r] = static_cast<int32_t>(p);
    s.row[p] = static_cast<int32_t>(r);
  }
  return s;
}

int64_t expert_capacity(int64_t tokens, int64_t k, double capacity_factor, int64_t experts) {
  MONET_CHECK(capacity_factor > 0 && experts > 0,
              "expert_capacity: capacity factor {} and experts {} must be positive",
              capacity_factor, experts);
  const double c =
      std::ceil(static_cast<double>(tokens * k) * capacity_factor / static_cast<double>(experts));
  return std::max<int64_t>(1, static_cast<int64_t>(c));
}

CapacityPlan plan_capacity(const std::vector<int32_t>& idx, int64_t n, int64_t k, int64_t experts,
                           int64_t capacity) {
  MONET_CHECK(static_cast<int64_t>(idx.size()) == n * k,
              "plan_capacity: {} indices for n = {}, k = {}", idx.size(), n, k);
  CapacityPlan plan;
  plan.capacity = capacity;
  plan.position.assign(n * k, -1);
  plan.counts.assign(experts, 0);
  for (int64_t s = 0; s < k; ++s)  // slot-major: every first choice before any second choice
    for (int64_t t = 0; t < n; ++t) {
      const int32_t e = idx[t * k + s];
      if (e < 0) continue;
      const int64_t pos = plan.counts[e]++;  // exclusive cumulative count for expert e
      plan.position[t * k + s] = static_cast<int32_t>(pos);
      ++plan.assigned;
      plan.dropped += pos >= capacity;
    }
  return plan;
}

// ---- the pieces the expert-parallel dispatch shares ----

std::vector<int32_t> host_expert_indices(const Tensor& idx, int64_t experts, const char* op) {
  std::vector<int32_t> h = idx.to_vector<int32_t>();  // the one host round trip of a dispatch
  for (int32_t e : h)
    MONET_CHECK(e >= -1 && e < experts, "{}: expert index {} out of range [-1, {})", op, e,
                experts);
  return h;
}

Tensor combine_slots(const Tensor& rows, const std::vector<int32_t>& where, const Tensor& gates,
                     int64_t n, int64_t k) {
  const int64_t R = rows.size(0), d = rows.size(1);
  std::vector<int32_t> ix(where);
  bool missing = false;
  for (int32_t& r : ix)
    if (r < 0) r = static_cast<int32_t>(R), missing = true;  // → an appended row of zeros
  Tensor src = missing ? concat({rows, zeros({1, d}, rows.dtype(), rows.device())}, 0) : rows;
  Tensor per_pair =
      index_select(src, 0, from_vector(ix, {n * k}, rows.device())).reshape({n, k, d});
  return sum(mul(per_pair, unsqueeze(gates, -1)), {1});
}

void fill_dispatch_stats(DispatchStats* stats, const std::vector<int32_t>& idx,
                         const std::vector<int32_t>& where, int64_t n, int64_t k, int64_t experts,
                         int64_t capacity) {
  if (!stats) return;
  *stats = DispatchStats{};
  stats->capacity = capacity;
  stats->counts.assign(experts, 0);
  for (int64_t t = 0; t < n; ++t) {
    int64_t assigned = 0, kept = 0;
    for (int64_t s = 0; s < k; ++s) {
      const int64_t p = t * k + s;
      if (idx[p] < 0) continue;
      ++assigned;
      ++stats->counts[idx[p]];
      kept += where[p] >= 0;
    }
    stats->assigned += assigned;
    stats->dropped += assigned - kept;
    stats->dropped_tokens += assigned > 0 && kept == 0;
  }
}

Tensor gather_sorted(const Tensor& x, const ExpertSort& s, int64_t k) {
  std::vector<int32_t> token(s.rows());
  for (int64_t r = 0; r < s.rows(); ++r) token[r] = static_cast<int32_t>(s.order[r] / k);
  return index_select(x, 0, from_vector(token, {s.rows()}, x.device()));
}

// ---- the dispatches ----

Tensor moe_dropless(const Tensor& x, const Tensor& idx, const Tensor& gates, const ExpertWeights& w,
                    nn::Activation act, DispatchStats* stats) {
  const auto [n, k, d, m, E] = check_inputs("moe_dropless", x, idx, gates, w);
  const std::vector<int32_t> ih = host_expert_indices(idx, E, "moe_dropless");
  const ExpertSort s = sort_by_expert(ih, E);
  fill_dispatch_stats(stats, ih, s.row, n, k, E, 0);
  if (s.rows() == 0) return zeros({n, d}, x.dtype(), x.device());     // every expert masked
  Tensor xs = gather_sorted(x, s, k);                                 // [R, d], by expert
  Tensor h = nn::activate(grouped_linear(xs, w.w1, s.offsets), act);  // σ(U_e x)  [R, m]
  Tensor ys = grouped_linear(h, w.w2, s.offsets);                     // V_e σ(·)  [R, d]
  return combine_slots(ys, s.row, gates, n, k);
}

Tensor moe_capacity(const Tensor& x, const Tensor& idx, const Tensor& gates, const ExpertWeights& w,
                    nn::Activation act, double capacity_factor, DispatchStats* stats) {
  const auto [n, k, d, m, E] = check_inputs("moe_capacity", x, idx, gates, w);
  const std::vector<int32_t> ih = host_expert_indices(idx, E, "moe_capacity");
  const int64_t C = expert_capacity(n, k, capacity_factor, E);
  const CapacityPlan plan = plan_capacity(ih, n, k, E, C);
  // Buffer row e·C + position holds the token of a kept pair; empty rows read the zero row n.
  std::vector<int32_t> slot_token(E * C, static_cast<int32_t>(n)), where(n * k, -1);
  for (int64_t p = 0; p < n * k; ++p) {
    const int32_t pos = plan.position[p];
    if (pos < 0 || pos >= C) continue;  // unassigned or dropped: contributes 0
    where[p] = static_cast<int32_t>(ih[p] * C + pos);
    slot_token[where[p]] = static_cast<int32_t>(p / k);
  }
  fill_dispatch_stats(stats, ih, where, n, k, E, C);
  Tensor xz = concat({x, zeros({1, d}, x.dtype(), x.device())}, 0);
  Tensor xb = index_select(xz, 0, from_vector(slot_token, {E * C}, x.device())).reshape({E, C, d});
  Tensor h = nn::activate(matmul(xb, transpose(w.w1, 1, 2)), act);   // [E, C, m]
  Tensor yb = matmul(h, transpose(w.w2, 1, 2)).reshape({E * C, d});  // [E·C, d]
  return combine_slots(yb, where, gates, n, k);
}

// ---- custom autograd ops ----

Tensor grouped_linear(const Tensor& x, const Tensor& w, const std::vector<int64_t>& offsets) {
  MONET_CHECK(x.dim() == 2 && w.dim() == 3 && w.size(2) == x.size(1),
              "grouped_linear: x {} and w {} are not [R, in] and [G, out, in]",
              shape_str(x.shape()), shape_str(w.shape()));
  const int64_t G = w.size(0), R = x.size(0);
  MONET_CHECK(
      static_cast<int64_t>(offsets.size()) == G + 1 && offsets.front() == 0 && offsets.back() == R,
      "grouped_linear: offsets [{}] must run from 0 to R = {} in G + 1 = {} steps",
      fmt::join(offsets, ", "), R, G + 1);
  for (int64_t g = 0; g < G; ++g)
    MONET_CHECK(offsets[g] <= offsets[g + 1], "grouped_linear: offsets [{}] decrease at group {}",
                fmt::join(offsets, ", "), g);
  Tensor xd = x.detach(), wd = w.detach();
  auto group = [](const Tensor& t, int64_t g) { return squeeze(slice(t, 0, g, g + 1), 0); };
  Tensor out = empty({R, w.size(1)}, x.dtype(), x.device());
  {
    NoGradGuard ng;
    for (int64_t g = 0; g < G; ++g) {
      const int64_t a = offsets[g], b = offsets[g + 1];
      if (a == b) continue;
      copy_(slice(out, 0, a, b), matmul(slice(xd, 0, a, b), transpose(group(wd, g), 0, 1)));
    }
  }
  const bool need_x = x.requires_grad(), need_w = w.requires_grad();
  record(out, "grouped_linear", {x, w}, [xd, wd, offsets, group, need_x, need_w](const Tensor& gy) {
    Tensor gx, gw;
    if (need_x) gx = empty(xd.shape(), gy.dtype(), gy.device());
    if (need_w) gw = zeros(wd.shape(), gy.dtype(), gy.device());  // empty groups get 0
    for (int64_t g = 0; g + 1 < static_cast<int64_t>(offsets.size()); ++g) {
      const int64_t a = offsets[g], b = offsets[g + 1];
      if (a == b) continue;
      Tensor dy = slice(gy, 0, a, b);
      if (need_x) copy_(slice(gx, 0, a, b), matmul(dy, group(wd, g)));  // dX_g = dY_g W_g
      if (need_w)                                                       // dW_g = dY_gᵀ X_g
        copy_(group(gw, g), matmul(transpose(dy, 0, 1), slice(xd, 0, a, b)));
    }
    return std::vector<Tensor>{gx, gw};
  });
  return out;
}

Tensor std_normal_cdf(const Tensor& z) {
  MONET_CHECK(is_floating(z.dtype()), "std_normal_cdf: expected a floating tensor, got {} {}",
              dtype_name(z.dtype()), shape_str(z.shape()));
  Tensor zh = z.detach().to(Device::cpu()).contiguous();
  Tensor out = empty(zh.shape(), zh.dtype());
  MONET_SWITCH_FLOAT(zh.dtype(), "std_normal_cdf", [&] {
    const scalar_t* pz = zh.data<scalar_t>();
    scalar_t* po = out.data<scalar_t>();
    for (int64_t i = 0; i < zh.numel(); ++i)
      po[i] = static_cast<scalar_t>(0.5 * std::erfc(-static_cast<double>(pz[i]) / std::sqrt(2.0)));
  });
  if (!z.device().is_cpu()) out = out.to(z.device());
  record(out, "std_normal_cdf", {z}, [zd = z.detach()](const Tensor& g) {
    const double inv_sqrt_2pi = 1.0 / std::sqrt(2.0 * M_PI);  // φ(z) = exp(−z²/2)/√(2π)
    return std::vector<Tensor>{mul(g, mul(exp(mul(mul(zd, zd), -0.5)), inv_sqrt_2pi))};
  });
  return out;
}

}  // namespace monet::moe
