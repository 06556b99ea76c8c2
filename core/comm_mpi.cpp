// The MPI communicator (comm.h): MPI_COMM_WORLD through the MPI library CMake found (Debian's
// Open MPI). Compiled only with MONET_WITH_MPI.
#include <fmt/format.h>
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <string>

#include "core/comm.h"
#include "core/error.h"

namespace monet {

namespace {

// Adds the wall time of its scope to `total`.
class Clock {
 public:
  explicit Clock(double& total) : total_(total), start_(std::chrono::steady_clock::now()) {}
  ~Clock() {
    total_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  Clock(const Clock&) = delete;
  Clock& operator=(const Clock&) = delete;

 private:
  double& total_;
  std::chrono::steady_clock::time_point start_;
};

// MPI counts are ints: large buffers go in chunks of at most this many elements.
constexpr int64_t kChunk = int64_t{1} << 24;

class MpiWorld final : public Communicator {
 public:
  MpiWorld() {
    int initialised = 0;
    MPI_Initialized(&initialised);
    MONET_CHECK(!initialised, "mpi_world: MPI is already initialised in this process");
    int provided = 0;
    // Only the thread that calls the collectives uses MPI (the OpenMP pool never does).
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    char version[MPI_MAX_LIBRARY_VERSION_STRING] = {};
    int len = 0;
    MPI_Get_library_version(version, &len);
    library_ = std::string(version, static_cast<size_t>(std::max(len, 0)));
    library_.resize(std::min(library_.size(), library_.find_first_of(",\n")));
  }
  ~MpiWorld() override {
    int finalised = 0;
    MPI_Finalized(&finalised);
    if (!finalised) MPI_Finalize();
  }
  MpiWorld(const MpiWorld&) = delete;
  MpiWorld& operator=(const MpiWorld&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string describe() const override {
    return fmt::format("MPI, {} rank{} ({})", size_, size_ == 1 ? "" : "s", library_);
  }

  void all_reduce_sum(float* data, int64_t n) override { reduce(data, n, MPI_FLOAT); }
  void all_reduce_sum(double* data, int64_t n) override { reduce(data, n, MPI_DOUBLE); }
  using Communicator::all_reduce_sum;

  std::vector<float> all_to_all_v(const float* send, const std::vector<int64_t>& send_counts,
                                  std::vector<int64_t>& recv_counts) override {
    MONET_CHECK(static_cast<int>(send_counts.size()) == size_,
                "all_to_all_v: {} send counts for {} ranks", send_counts.size(), size_);
    const Clock clock(traffic_.all_to_all_seconds);
    recv_counts.assign(static_cast<size_t>(size_), 0);
    MPI_Alltoall(send_counts.data(), 1, MPI_INT64_T, recv_counts.data(), 1, MPI_INT64_T,
                 MPI_COMM_WORLD);
    std::vector<int> sc(static_cast<size_t>(size_)), sd(sc.size()), rc(sc.size()), rd(sc.size());
    int64_t s_off = 0, r_off = 0;
    for (size_t r = 0; r < sc.size(); ++r) {
      MONET_CHECK(send_counts[r] >= 0 && s_off + send_counts[r] <= INT_MAX &&
                      r_off + recv_counts[r] <= INT_MAX,
                  "all_to_all_v: counts beyond MPI's int range ({} to rank {})", send_counts[r], r);
      sc[r] = static_cast<int>(send_counts[r]), sd[r] = static_cast<int>(s_off);
      rc[r] = static_cast<int>(recv_counts[r]), rd[r] = static_cast<int>(r_off);
      s_off += send_counts[r], r_off += recv_counts[r];
    }
    std::vector<float> out(static_cast<size_t>(r_off));
    traffic_.all_to_all_bytes +=
        static_cast<int64_t>(sizeof(float)) * (s_off - send_counts[static_cast<size_t>(rank_)]);
    ++traffic_.all_to_all_calls;
    MPI_Alltoallv(send, sc.data(), sd.data(), MPI_FLOAT, out.data(), rc.data(), rd.data(),
                  MPI_FLOAT, MPI_COMM_WORLD);
    return out;
  }

  void broadcast(void* data, int64_t bytes, int root) override {
    MONET_CHECK(root >= 0 && root < size_, "broadcast: root {} of {} ranks", root, size_);
    auto* p = static_cast<char*>(data);
    if (rank_ == root) traffic_.broadcast_bytes += bytes;
    for (int64_t at = 0; at < bytes; at += kChunk)
      MPI_Bcast(p + at, static_cast<int>(std::min(kChunk, bytes - at)), MPI_BYTE, root,
                MPI_COMM_WORLD);
  }
  void barrier() override { MPI_Barrier(MPI_COMM_WORLD); }
  [[noreturn]] void abort(int code) override {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);  // MPI_Abort does not return; this is for the compiler
  }

 private:
  // Deterministic sum in two halves, as a ring all-reduce moves the data: the vector is cut into
  // R chunks; rank r receives chunk r from every rank (MPI_Alltoallv) and adds the R copies in
  // rank order (the reduce-scatter), then every rank receives every summed chunk (MPI_Allgatherv).
  // Each rank sends and receives 2(R−1)/R of the vector, and the result does not depend on MPI's
  // reduction tree (MPI_Allreduce's order is unspecified).
  template <class T>
  void reduce(T* data, int64_t n, MPI_Datatype type) {
    if (size_ == 1) return;
    const Clock clock(traffic_.all_reduce_seconds);
    traffic_.all_reduce_bytes += static_cast<int64_t>(sizeof(T)) * n;
    ++traffic_.all_reduce_calls;
    const auto R = static_cast<size_t>(size_), me = static_cast<size_t>(rank_);
    std::vector<int> counts(R), offsets(R), recv_offsets(R);
    std::vector<T> mine;
    for (int64_t at = 0; at < n; at += kChunk) {
      const int64_t m = std::min(kChunk, n - at);
      for (size_t r = 0, off = 0; r < R; ++r) {  // chunk r: m/R values, one more for the first m%R
        counts[r] = static_cast<int>(m / size_ + (static_cast<int64_t>(r) < m % size_ ? 1 : 0));
        offsets[r] = static_cast<int>(off);
        off += static_cast<size_t>(counts[r]);
      }
      const int c = counts[me];
      for (size_t r = 0; r < R; ++r) recv_offsets[r] = static_cast<int>(r) * c;
      mine.resize(R * static_cast<size_t>(c));
      std::vector<int> recv_counts(R, c);
      MPI_Alltoallv(data + at, counts.data(), offsets.data(), type, mine.data(), recv_counts.data(),
                    recv_offsets.data(), type, MPI_COMM_WORLD);
      T* out = data + at + offsets[me];
      for (int i = 0; i < c; ++i) {
        T sum = mine[static_cast<size_t>(i)];
        for (size_t r = 1; r < R; ++r) sum += mine[r * static_cast<size_t>(c) + i];
        out[i] = sum;
      }
      MPI_Allgatherv(MPI_IN_PLACE, 0, type, data + at, counts.data(), offsets.data(), type,
                     MPI_COMM_WORLD);
    }
  }

  int rank_ = 0, size_ = 1;
  std::string library_;
};

}  // namespace

bool mpi_available() {
  return true;
}

std::unique_ptr<Communicator> mpi_world() {
  return std::make_unique<MpiWorld>();
}

}  // namespace monet
