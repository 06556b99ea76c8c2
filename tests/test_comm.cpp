// The single-process communicator (core/comm.h): rank 0 of 1, collectives that leave the data as
// it is. The MPI one runs under mpirun in tests/mpi/ (registered in tests/CMakeLists.txt).
#include <gtest/gtest.h>

#include "core/comm.h"
#include "core/ops.h"
#include "test_train_util.h"

using namespace monet;
using monet::testing::ThrowsWith;

TEST(Comm, SingleProcessIsRankZeroOfOneAndLeavesDataAsItIs) {
  std::unique_ptr<Communicator> c = single_process();
  EXPECT_EQ(c->rank(), 0);
  EXPECT_EQ(c->size(), 1);
  EXPECT_EQ(c->describe(), "1 process");
  std::vector<float> x = {1.5f, -2.0f, 3.25f};
  c->all_reduce_sum(x.data(), 3);
  EXPECT_EQ(x, (std::vector<float>{1.5f, -2.0f, 3.25f}));
  Tensor t = from_vector<double>({1, 2, 3, 4}, {2, 2});
  c->all_reduce_sum(t);
  EXPECT_EQ(t.to_vector<double>(), (std::vector<double>{1, 2, 3, 4}));
  std::vector<int64_t> got;
  EXPECT_EQ(c->all_to_all_v(x.data(), {2}, got), (std::vector<float>{1.5f, -2.0f}));
  EXPECT_EQ(got, (std::vector<int64_t>{2}));
  char msg[] = "kept";
  c->broadcast(msg, sizeof msg, 0);
  EXPECT_STREQ(msg, "kept");
  c->barrier();
  EXPECT_TRUE(ThrowsWith([&] { c->broadcast(msg, sizeof msg, 1); }, {"root 1 of 1"}));
  EXPECT_TRUE(ThrowsWith([&] { c->all_to_all_v(x.data(), {1, 1}, got); }, {"2 send counts"}));
  EXPECT_TRUE(ThrowsWith([&] { c->all_reduce_sum(from_vector<int32_t>({1}, {1})); },
                         {"F32 or F64", "I32"}));
  if (!mpi_available()) {
    EXPECT_TRUE(ThrowsWith([] { mpi_world(); }, {"built without MPI", "libopenmpi-dev"}));
  }
}
