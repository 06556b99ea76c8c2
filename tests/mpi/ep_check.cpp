// Run under an MPI launcher (tests/CMakeLists.txt: mpirun -np 2): the expert-parallel dropless
// dispatch (monet/expert_parallel.h) against moe_dropless on one process. Every rank builds the
// same random problem from one seed (tests/ep_problem.h) and runs moe_dropless on all of it with
// all the experts, the reference; then each rank runs moe_dropless_ep on its share — its token
// rows and its E/R experts — and compares its output rows and the gradients of its x rows, its
// gates and its w1/w2 slices with the reference's, under one upstream gradient.
//
// Tolerance: |got − want| ≤ 1e-5 · max(|want|, 1e-3 · max |want|), elementwise. Each line also
// says how many elements differ in any bit: an expert's rows reach it in the order the
// one-process sort gives them (source rank, then pair), so each gemm multiplies the same matrix
// and bit-identical results are expected, but a BLAS may block a gemm differently, so only the
// tolerance fails the check.
//
// The cases: tokens routed everywhere (relu2, gelu); rank 0's tokens routed to rank 0's experts
// only (it sends nothing to the others); rank 0 with no tokens at all. Exit 0 when all pass.
#include <fmt/format.h>

#include <cstdio>
#include <functional>
#include <numeric>
#include <string>
#include <vector>

#include "core/comm.h"
#include "core/error.h"
#include "monet/expert_parallel.h"
#include "tests/ep_problem.h"
#include "tests/mpi/mpi_main.h"

using namespace monet;
using namespace monet::moe;
namespace ep = monet::testing::ep;

namespace {

constexpr double kTol = 1e-5;

struct Case {
  std::string name;
  ep::Spec spec;
  nn::Activation act;
  // The first token of rank r (r = 0..R); the default splits the tokens evenly.
  std::function<int64_t(int, int, int64_t)> first_token = [](int r, int R, int64_t n) {
    return r * n / R;
  };
};

// The failures of one case on this rank (0 when it passes).
int run_case(const Case& c, Communicator& comm) {
  const int r = comm.rank(), R = comm.size();
  const ep::Problem p = ep::make_problem(c.spec);
  const int64_t n = c.spec.n, d = c.spec.d, E = c.spec.experts;
  // The reference: one process, all tokens, all experts.
  Tensor y = moe_dropless(p.x, p.idx, p.gates, p.w, c.act);
  y.backward(p.gy);
  // This rank's share.
  const int64_t a = c.first_token(r, R, n), b = c.first_token(r + 1, R, n);
  const ExpertShard shard = expert_shard(E, comm);
  const int64_t e0 = shard.first, e1 = shard.first + shard.count;
  Tensor x = ep::rows_leaf(p.x, a, b), gates = ep::rows_leaf(p.gates, a, b);
  ExpertWeights w{ep::rows_leaf(p.w.w1, e0, e1), ep::rows_leaf(p.w.w2, e0, e1)};
  Tensor idx = slice(p.idx, 0, a, b).contiguous();
  const int64_t sent_before = comm.traffic().all_to_all_bytes;
  Tensor yr = moe_dropless_ep(x, idx, gates, w, E, c.act, comm);
  const int64_t sent = comm.traffic().all_to_all_bytes - sent_before;  // the forward's
  yr.backward(slice(p.gy, 0, a, b).contiguous());

  int failures = 0;
  auto check = [&](const char* what, const Tensor& got, const Tensor& want) {
    const ep::Diff df = ep::compare(got, want, kTol);
    const bool ok = got.defined() && df.over == 0;
    failures += !ok;
    fmt::print("ep_check: rank {} {:<22} {:<7} {:>4} values, {}{}\n", r, c.name, what,
               got.defined() ? got.numel() : 0,
               df.bits == 0 ? std::string("bit-identical")
                            : fmt::format("{} differ in bits, max rel {:.2e}", df.bits, df.max_rel),
               ok ? "" : fmt::format("  MISMATCH (tolerance {:.0e})", kTol));
  };
  check("y", yr, slice(y, 0, a, b));
  check("dx", x.grad(), slice(p.x.grad(), 0, a, b));
  check("dgates", gates.grad(), slice(p.gates.grad(), 0, a, b));
  check("dw1", w.w1.grad(), slice(p.w.w1.grad(), 0, e0, e1));
  check("dw2", w.w2.grad(), slice(p.w.w2.grad(), 0, e0, e1));

  // The communicator's byte count of the forward: rows of this rank's pairs bound for other
  // ranks' experts, plus the rows of other ranks' pairs bound for this rank's experts (they go
  // back), d floats each.
  int64_t rows = 0;
  for (int64_t t = 0; t < n; ++t)
    for (int64_t s = 0; s < c.spec.k; ++s) {
      const int32_t e = p.idx_host[static_cast<size_t>(t * c.spec.k + s)];
      if (e < 0) continue;
      const bool mine = t >= a && t < b, here = e >= e0 && e < e1;
      rows += mine != here;
    }
  const int64_t want_bytes = rows * d * static_cast<int64_t>(sizeof(float));
  if (sent != want_bytes) {
    ++failures;
    fmt::print("ep_check: rank {} {}: all-to-all bytes {} MISMATCH, expected {}\n", r, c.name, sent,
               want_bytes);
  }
  return failures;
}

}  // namespace

int main() {
  return testing::mpi_main("ep_check", [](Communicator& comm) {
    const int R = comm.size();
    if (R < 2) throw Error(fmt::format("ep_check: needs at least 2 ranks, got {}", R));
    std::vector<Case> cases;
    ep::Spec spread;  // k = 2, expert 5 unused, about 1 slot in 8 masked
    spread.n = 32;
    spread.experts = 4 * R;
    cases.push_back({"spread relu2", spread, nn::Activation::ReLU2});
    spread.seed = 2;
    cases.push_back({"spread gelu", spread, nn::Activation::GELU});
    ep::Spec home = spread;  // rank 0's tokens stay on rank 0's experts
    home.seed = 3;
    home.home_tokens = home.n / R;
    home.home_experts = home.experts / R;
    cases.push_back({"rank 0 sends nothing", home, nn::Activation::ReLU2});
    ep::Spec idle = spread;
    idle.seed = 4;
    Case none{"rank 0 has no tokens", idle, nn::Activation::ReLU2};
    none.first_token = [](int r, int R, int64_t n) {  // rank 0: [0, 0); the others split n
      return r == 0 ? 0 : (r - 1) * n / (R - 1);
    };
    cases.push_back(none);

    double all = std::accumulate(cases.begin(), cases.end(), 0.0,
                                 [&](double f, const Case& c) { return f + run_case(c, comm); });
    comm.all_reduce_sum(&all, 1);
    if (comm.rank() == 0)
      fmt::print("ep_check: {}: {}\n", comm.describe(),
                 all == 0 ? "the expert-parallel dispatch equals moe_dropless on every rank"
                          : fmt::format("FAILED, {} mismatches over the ranks", all));
    return all == 0 ? 0 : 1;
  });
}
