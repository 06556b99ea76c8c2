// The single-process communicator and what every communicator shares (see comm.h); the MPI one
// is comm_mpi.cpp, compiled only when CMake found MPI.
#include "core/comm.h"

#include <fmt/format.h>

#include <cstdlib>

#include "core/error.h"
#include "core/ops.h"

namespace monet {

void Communicator::all_reduce_sum(const Tensor& t) {
  MONET_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::F64,
              "all_reduce_sum: F32 or F64 tensors only, got {}", dtype_name(t.dtype()));
  MONET_CHECK(t.is_contiguous(), "all_reduce_sum: the tensor must be contiguous, got shape {}",
              shape_str(t.shape()));
  if (size() == 1 || t.numel() == 0) return;
  Tensor host = t.device().is_cpu() ? t : t.to(Device::cpu());
  if (host.dtype() == DType::F32)
    all_reduce_sum(host.data<float>(), host.numel());
  else
    all_reduce_sum(host.data<double>(), host.numel());
  if (!t.device().is_cpu()) copy_(t, host);
}

namespace {

class SingleProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string describe() const override { return "1 process"; }
  void all_reduce_sum(float*, int64_t) override {}
  void all_reduce_sum(double*, int64_t) override {}
  using Communicator::all_reduce_sum;
  std::vector<float> all_to_all_v(const float* send, const std::vector<int64_t>& send_counts,
                                  std::vector<int64_t>& recv_counts) override {
    MONET_CHECK(send_counts.size() == 1 && send_counts[0] >= 0,
                "all_to_all_v: {} send counts for 1 rank", send_counts.size());
    recv_counts = send_counts;
    return std::vector<float>(send, send + send_counts[0]);
  }
  void broadcast(void*, int64_t, int root) override {
    MONET_CHECK(root == 0, "broadcast: root {} of 1 rank", root);
  }
  void barrier() override {}
  [[noreturn]] void abort(int code) override { std::_Exit(code); }
};

}  // namespace

std::unique_ptr<Communicator> single_process() {
  return std::make_unique<SingleProcess>();
}

#ifndef MONET_WITH_MPI
bool mpi_available() {
  return false;
}
std::unique_ptr<Communicator> mpi_world() {
  throw Error(
      "this monet was built without MPI: install libopenmpi-dev and openmpi-bin "
      "(scripts/deps.sh does) and rebuild");
}
#endif

}  // namespace monet
