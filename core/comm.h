// The processes of one job and what they exchange: a communicator, as MPI's (issue #19). Every
// rank calls the collectives in the same order; a rank that stops calling them would leave the
// others waiting, so a rank that fails calls abort(), which ends the whole job.
//
// Two implementations: single_process() (rank 0 of 1; the collectives copy or do nothing), and
// mpi_world() (MPI_COMM_WORLD, only in builds that found MPI: CMake option MONET_MPI, Debian's
// libopenmpi-dev). A GPU collective library would be a third; the tensor-level all_reduce_sum is
// virtual so that one could reduce device memory directly, where these stage it through the host.
//
// Determinism: all_reduce_sum adds the ranks' values in rank order, ((x₀ + x₁) + x₂) + …, on
// every rank, so all ranks hold the same bits and a run repeats bit for bit — the order
// gradient accumulation over micro-batches 0, 1, 2, … uses in one process.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace monet {

// What a communicator sent, in payload bytes (what the caller handed over, not what the
// algorithm puts on the wire): an all-reduce of n floats counts 4n, an all-to-all-v the bytes sent
// to other ranks. Zero in the single-process communicator.
// The seconds are wall time inside those collectives, waiting for the other ranks included.
struct CommTraffic {
  int64_t all_reduce_bytes = 0, all_to_all_bytes = 0, broadcast_bytes = 0;
  int64_t all_reduce_calls = 0, all_to_all_calls = 0;
  double all_reduce_seconds = 0, all_to_all_seconds = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string describe() const = 0;  // "1 process", "MPI, 2 ranks (Open MPI v4.1.4)"

  // In place: every rank's data becomes the elementwise sum over the ranks, in rank order.
  virtual void all_reduce_sum(float* data, int64_t n) = 0;
  virtual void all_reduce_sum(double* data, int64_t n) = 0;
  // A contiguous F32 / F64 tensor, in place; CUDA tensors go through host memory.
  virtual void all_reduce_sum(const Tensor& t);

  // Rank r sends send_counts[d] values to rank d, taken from `send` in consecutive blocks in rank
  // order, and returns what every rank sent to it, concatenated in rank order; recv_counts[s]
  // is set to how many came from rank s. send_counts has size() entries.
  virtual std::vector<float> all_to_all_v(const float* send,
                                          const std::vector<int64_t>& send_counts,
                                          std::vector<int64_t>& recv_counts) = 0;
  // `bytes` bytes of root's `data` into every rank's `data`.
  virtual void broadcast(void* data, int64_t bytes, int root) = 0;
  virtual void barrier() = 0;
  // Ends every rank of the job with `code` (a launcher exits non-zero); does not return.
  [[noreturn]] virtual void abort(int code) = 0;

  // Round-robin shares of independent work (evaluation batches): item i is rank i mod size's.
  bool owns(int64_t item) const { return item % size() == rank(); }
  const CommTraffic& traffic() const { return traffic_; }

 protected:
  CommTraffic traffic_;
};

std::unique_ptr<Communicator> single_process();

// Whether this build has the MPI communicator.
bool mpi_available();
// MPI_COMM_WORLD. Initialises MPI on first use and finalises it when the communicator is
// destroyed; at most one per process. An error in builds without MPI.
std::unique_ptr<Communicator> mpi_world();

}  // namespace monet
