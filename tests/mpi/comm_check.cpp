// Run under an MPI launcher (tests/CMakeLists.txt: mpirun -np 2): the MPI communicator's
// collectives against values every rank computes for itself. Exit 0 when all agree.
//
//   comm_check         the collectives
//   comm_check fail    rank 1 throws while the others wait in a collective: the job must end
//                      with a non-zero status and rank 1's message, never hang.
#include <fmt/format.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/comm.h"
#include "core/error.h"
#include "core/ops.h"
#include "tests/mpi/mpi_main.h"

using namespace monet;

namespace {

void check(bool ok, const std::string& what) {
  if (!ok) throw Error("comm_check: " + what);
}

void collectives(Communicator& c) {
  const int r = c.rank(), R = c.size();
  check(R >= 2, fmt::format("needs at least 2 ranks, got {}", R));
  // all_reduce_sum: x_r[i] = (r + 1)·0.1·(i + 1), summed in rank order. Each rank's values are
  // stored before they are added, as the communicator adds them (no fused multiply-add).
  // Lengths that split unevenly over the ranks' chunks (the reduce-scatter), and one of 1.
  auto value = [](int q, int64_t i) {
    return static_cast<float>(q + 1) * 0.1f * static_cast<float>(i + 1);
  };
  std::vector<float> x;
  for (const int64_t n : {int64_t{1}, int64_t{7}, int64_t{1001}, int64_t{1000}}) {
    x.assign(static_cast<size_t>(n), 0.0f);
    for (int64_t i = 0; i < n; ++i) x[i] = value(r, i);
    c.all_reduce_sum(x.data(), n);
    std::vector<std::vector<float>> each(static_cast<size_t>(R), std::vector<float>(n));
    for (int q = 0; q < R; ++q)
      for (int64_t i = 0; i < n; ++i) each[static_cast<size_t>(q)][i] = value(q, i);
    for (int64_t i = 0; i < n; ++i) {
      float want = each[0][i];
      for (int q = 1; q < R; ++q) want += each[static_cast<size_t>(q)][i];
      check(x[i] == want, fmt::format("all_reduce_sum[{}] of {} = {} on rank {}, expected {}", i, n,
                                      x[i], r, want));
    }
  }
  // Every rank holds the same bits: rank 0's result broadcast equals each rank's own.
  std::vector<float> root = x;
  c.broadcast(root.data(), static_cast<int64_t>(root.size() * sizeof(float)), 0);
  check(std::memcmp(root.data(), x.data(), root.size() * sizeof(float)) == 0,
        fmt::format("rank {} reduced to other bits than rank 0", r));
  // A tensor, F64.
  Tensor t = full({3, 4}, static_cast<double>(r + 1), DType::F64);
  c.all_reduce_sum(t);
  for (double v : t.to_vector<double>())
    check(v == R * (R + 1) / 2.0, fmt::format("tensor all_reduce_sum gave {}", v));
  // all_to_all_v: rank r sends d + 1 + r values to rank d, value 1000 r + 10 d + j.
  std::vector<int64_t> counts(static_cast<size_t>(R)), got;
  std::vector<float> send;
  for (int d = 0; d < R; ++d) {
    counts[static_cast<size_t>(d)] = d + 1 + r;
    for (int j = 0; j < d + 1 + r; ++j) send.push_back(static_cast<float>(1000 * r + 10 * d + j));
  }
  const std::vector<float> recv = c.all_to_all_v(send.data(), counts, got);
  size_t at = 0;
  for (int s = 0; s < R; ++s) {
    check(got[static_cast<size_t>(s)] == r + 1 + s,
          fmt::format("rank {} got {} values from rank {}", r, got[static_cast<size_t>(s)], s));
    for (int j = 0; j < r + 1 + s; ++j, ++at)
      check(recv.at(at) == static_cast<float>(1000 * s + 10 * r + j),
            fmt::format("all_to_all_v value {} from rank {}", j, s));
  }
  check(at == recv.size(), "all_to_all_v returned extra values");
  // broadcast from the last rank.
  char msg[32] = {};
  if (r == R - 1) std::snprintf(msg, sizeof msg, "hello from %d", r);
  c.broadcast(msg, sizeof msg, R - 1);
  check(std::string(msg) == fmt::format("hello from {}", R - 1), "broadcast");
  c.barrier();
  if (r == 0) fmt::print("comm_check: {}: every collective agrees\n", c.describe());
}

}  // namespace

int main(int argc, char** argv) {
  const bool fail = argc > 1 && std::string(argv[1]) == "fail";
  return testing::mpi_main("comm_check", [fail](Communicator& c) {
    if (fail) {
      if (c.rank() == 1) throw Error("rank 1 fails on purpose");
      c.barrier();  // without the abort, rank 0 would wait here forever
      return 0;
    }
    collectives(c);
    return 0;
  });
}
