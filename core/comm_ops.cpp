// Collectives as ops of the graph (comm_ops.h).
#include "core/comm_ops.h"

#include <fmt/format.h>

#include <numeric>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"

namespace monet {

namespace {

// The exchange itself, recorded nowhere: the forward and its backward both run it. Rows travel
// as d consecutive floats each, so the counts all_to_all_v takes are rows · d.
Tensor exchange_rows(const Tensor& x, const std::vector<int64_t>& send_rows, Communicator& comm,
                     std::vector<int64_t>& recv_rows) {
  const int64_t d = x.size(1);
  Tensor host = x.detach().to(Device::cpu()).contiguous();  // a CUDA tensor goes through the host
  std::vector<int64_t> send_counts(send_rows.size()), recv_counts;
  for (size_t q = 0; q < send_rows.size(); ++q) send_counts[q] = send_rows[q] * d;
  const std::vector<float> got = comm.all_to_all_v(host.data<float>(), send_counts, recv_counts);
  recv_rows.assign(recv_counts.size(), 0);
  for (size_t q = 0; q < recv_counts.size(); ++q) {
    MONET_CHECK(recv_counts[q] % d == 0,
                "all_to_all_rows: rank {} sent {} values to rank {}, not whole rows of width {}", q,
                recv_counts[q], comm.rank(), d);
    recv_rows[q] = recv_counts[q] / d;
  }
  const int64_t rows = std::accumulate(recv_rows.begin(), recv_rows.end(), int64_t{0});
  return from_vector(got, {rows, d}, x.device());
}

}  // namespace

Tensor all_to_all_rows(const Tensor& x, const std::vector<int64_t>& send_rows, Communicator& comm,
                       std::vector<int64_t>* recv_rows) {
  MONET_CHECK(x.defined() && x.dim() == 2 && x.size(1) > 0 && x.dtype() == DType::F32,
              "all_to_all_rows: x must be F32 [rows, d > 0], got {} {}",
              x.defined() ? dtype_name(x.dtype()) : "undefined",
              x.defined() ? shape_str(x.shape()) : "");
  MONET_CHECK(static_cast<int>(send_rows.size()) == comm.size(),
              "all_to_all_rows: {} send counts for {} ranks", send_rows.size(), comm.size());
  int64_t total = 0;
  for (int64_t r : send_rows) {
    MONET_CHECK(r >= 0, "all_to_all_rows: negative send count in [{}]", fmt::join(send_rows, ", "));
    total += r;
  }
  MONET_CHECK(total == x.size(0), "all_to_all_rows: send counts [{}] add up to {}, x has {} rows",
              fmt::join(send_rows, ", "), total, x.size(0));
  std::vector<int64_t> got;
  Tensor out = exchange_rows(x, send_rows, comm, got);
  // Backward: what came from rank q goes back to rank q (its send count is our receive count);
  // what returns lands in our send order, so it is dx row for row.
  record(out, "all_to_all_rows", {x}, [comm = &comm, got, rows = x.size(0)](const Tensor& gy) {
    std::vector<int64_t> back;
    Tensor gx = exchange_rows(gy, got, *comm, back);
    MONET_CHECK(gx.size(0) == rows,
                "all_to_all_rows backward: {} gradient rows came back for {} sent rows "
                "(the ranks ran different graphs)",
                gx.size(0), rows);
    return std::vector<Tensor>{gx};
  });
  if (recv_rows) *recv_rows = std::move(got);
  return out;
}

std::vector<int64_t> all_gather_counts(const std::vector<int64_t>& mine, Communicator& comm) {
  const int64_t n = static_cast<int64_t>(mine.size()), R = comm.size(), r = comm.rank();
  std::vector<double> all(static_cast<size_t>(R * n), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    MONET_CHECK(mine[i] >= 0 && mine[i] < (int64_t{1} << 53),
                "all_gather_counts: count {} at {} is not in [0, 2^53)", mine[i], i);
    all[static_cast<size_t>(r * n + i)] = static_cast<double>(mine[i]);
  }
  comm.all_reduce_sum(all.data(), R * n);  // one non-zero term per entry: exact
  std::vector<int64_t> out(all.size());
  for (size_t i = 0; i < all.size(); ++i) out[i] = static_cast<int64_t>(all[i]);
  return out;
}

}  // namespace monet
