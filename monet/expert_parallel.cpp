// The expert-parallel dropless dispatch (expert_parallel.h).
#include "monet/expert_parallel.h"

#include <fmt/format.h>

#include <numeric>

#include "core/autograd.h"
#include "core/comm_ops.h"
#include "core/ops.h"

namespace monet::moe {

ExpertShard expert_shard(int64_t experts, const Communicator& comm) {
  const int64_t R = comm.size();
  MONET_CHECK(experts > 0 && experts % R == 0,
              "expert_shard: {} experts do not split over {} ranks (expert parallelism needs the "
              "rank count to divide the expert count)",
              experts, R);
  const int64_t per = experts / R;
  return {comm.rank() * per, per};
}

Tensor shard_rows(const Tensor& whole, const ExpertShard& shard) {
  NoGradGuard ng;
  const Tensor rows = slice(whole, 0, shard.first, shard.first + shard.count);
  Tensor part = empty_like(rows);
  copy_(part, rows);
  return part;
}

namespace {

constexpr const char* kOp = "moe_dropless_ep";

struct Sizes {
  int64_t n, k, d;
};

Sizes check_inputs(const Tensor& x, const Tensor& idx, const Tensor& gates,
                   const ExpertWeights& local, int64_t experts, const ExpertShard& shard,
                   int ranks) {
  MONET_CHECK(x.dim() == 2 && x.size(1) > 0 && x.dtype() == DType::F32,
              "{}: x must be F32 [n, d > 0] (the all-to-all carries F32), got {} {}", kOp,
              dtype_name(x.dtype()), shape_str(x.shape()));
  MONET_CHECK(idx.dim() == 2 && idx.size(0) == x.size(0) && idx.dtype() == DType::I32,
              "{}: idx must be int32 [n = {}, k], got {} {}", kOp, x.size(0),
              dtype_name(idx.dtype()), shape_str(idx.shape()));
  MONET_CHECK(gates.shape() == idx.shape() && gates.dtype() == x.dtype(),
              "{}: gates {} {} must match idx {} and x's dtype {}", kOp, dtype_name(gates.dtype()),
              shape_str(gates.shape()), shape_str(idx.shape()), dtype_name(x.dtype()));
  const Tensor &w1 = local.w1, &w2 = local.w2;
  MONET_CHECK(w1.dim() == 3 && w2.dim() == 3 && w1.size(0) == shard.count &&
                  w2.size(0) == shard.count && w1.size(2) == x.size(1) && w2.size(1) == x.size(1) &&
                  w2.size(2) == w1.size(1),
              "{}: local expert weights w1 {} / w2 {} are not [E/R = {}, m, d] / [E/R, d, m] for "
              "E = {} experts on {} ranks and x {}",
              kOp, shape_str(w1.shape()), shape_str(w2.shape()), shard.count, experts, ranks,
              shape_str(x.shape()));
  return {x.size(0), idx.size(1), x.size(1)};
}

// The permutation between the received order and the experts' order. Rank q's rows for this
// rank's local expert j, c(q, j) = counts[q·E + first + j] of them, arrive as block (q, j) in
// source-major order (q, then j). Expert-major order (j, then q) puts block (q, j) at
// offsets[j] + Σ_{q' < q} c(q', j), with offsets the exclusive prefix sum of Σ_q c(q, j). Inside
// a block the rows keep their order: the sender's pair order.
struct Regroup {
  std::vector<int32_t> to_expert;  // expert-major row i is received row to_expert[i]
  std::vector<int32_t> to_source;  // received row i is expert-major row to_source[i]
  std::vector<int64_t> offsets;    // [L + 1] local expert j owns expert-major rows [o_j, o_j+1)
  bool identity = true;            // one rank, or one expert per rank: nothing moves
};

Regroup regroup(const std::vector<int64_t>& counts, int64_t ranks, int64_t experts,
                const ExpertShard& shard) {
  auto c = [&](int64_t q, int64_t j) { return counts[q * experts + shard.first + j]; };
  Regroup g;
  g.offsets.assign(shard.count + 1, 0);
  for (int64_t j = 0; j < shard.count; ++j) {
    g.offsets[j + 1] = g.offsets[j];
    for (int64_t q = 0; q < ranks; ++q) g.offsets[j + 1] += c(q, j);
  }
  const int64_t rows = g.offsets.back();
  g.to_expert.assign(rows, 0);
  g.to_source.assign(rows, 0);
  std::vector<int64_t> next(g.offsets.begin(), g.offsets.end() - 1);
  int64_t src = 0;
  for (int64_t q = 0; q < ranks; ++q)  // the received rows, in order
    for (int64_t j = 0; j < shard.count; ++j)
      for (int64_t i = 0; i < c(q, j); ++i, ++src) {
        const int64_t dst = next[j]++;
        g.to_expert[dst] = static_cast<int32_t>(src);
        g.to_source[src] = static_cast<int32_t>(dst);
        g.identity = g.identity && dst == src;
      }
  return g;
}

}  // namespace

Tensor moe_dropless_ep(const Tensor& x, const Tensor& idx, const Tensor& gates,
                       const ExpertWeights& local, int64_t experts, nn::Activation act,
                       Communicator& comm, DispatchStats* stats) {
  const ExpertShard shard = expert_shard(experts, comm);
  const int64_t R = comm.size(), E = experts, L = shard.count;
  const Sizes z = check_inputs(x, idx, gates, local, E, shard, comm.size());
  const int64_t n = z.n, k = z.k, d = z.d;
  const std::vector<int32_t> ih = host_expert_indices(idx, E, kOp);
  const ExpertSort s = sort_by_expert(ih, E);  // rows by global expert: rank 0's experts first
  fill_dispatch_stats(stats, ih, s.row, n, k, E, 0);

  // The counts exchange: all[q·E + e] = the pairs rank q routes to expert e, on every rank. It
  // sizes both all-to-alls: rank r sends rank q the rows of q's experts, s.offsets[(q+1)·L] −
  // s.offsets[q·L], and receives Σ_j all[q·E + first + j] rows from it.
  const std::vector<int64_t> all = all_gather_counts(s.counts, comm);
  if (std::accumulate(all.begin(), all.end(), int64_t{0}) == 0)  // every pair of every rank
    return zeros({n, d}, x.dtype(), x.device());                 // masked: all ranks stop here
  std::vector<int64_t> send(R), recv(R, 0);
  for (int64_t q = 0; q < R; ++q) {
    send[q] = s.offsets[(q + 1) * L] - s.offsets[q * L];
    for (int64_t j = 0; j < L; ++j) recv[q] += all[q * E + shard.first + j];
  }
  const Regroup g = regroup(all, R, E, shard);
  const int64_t rows = g.offsets.back();
  auto permute_rows = [&](const Tensor& t, const std::vector<int32_t>& ix) {
    return g.identity ? t : index_select(t, 0, from_vector(ix, {rows}, t.device()));
  };

  Tensor xs = gather_sorted(x, s, k);  // [s.rows(), d], by global expert
  std::vector<int64_t> got;
  Tensor xr = all_to_all_rows(xs, send, comm, &got);  // [rows, d], source-major
  MONET_CHECK(got == recv,
              "{}: rank {} received rows [{}] from the ranks, the counts exchange said [{}]", kOp,
              comm.rank(), fmt::join(got, ", "), fmt::join(recv, ", "));
  Tensor xe = permute_rows(xr, g.to_expert);                              // expert-major
  Tensor h = nn::activate(grouped_linear(xe, local.w1, g.offsets), act);  // σ(U_e x)  [rows, m]
  Tensor ye = grouped_linear(h, local.w2, g.offsets);                     // V_e σ(·)  [rows, d]
  Tensor yr = permute_rows(ye, g.to_source);                              // source-major
  Tensor ys = all_to_all_rows(yr, recv, comm);  // [s.rows(), d], back in the order xs was sent
  return combine_slots(ys, s.row, gates, n, k);
}

}  // namespace monet::moe
