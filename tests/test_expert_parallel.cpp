// The expert-parallel dispatch (monet/expert_parallel.h) and its all-to-all op (core/comm_ops.h)
// on one process: there the dispatch must be moe_dropless bit for bit, in the output and in the
// gradients of x, the gates, w1 and w2. Across 2 MPI ranks it runs in tests/mpi/ep_check.cpp.
#include <gtest/gtest.h>

#include <cstring>

#include "core/comm_ops.h"
#include "ep_problem.h"
#include "monet/expert_parallel.h"
#include "test_train_util.h"

using namespace monet;
using namespace monet::moe;
using monet::testing::ThrowsWith;
namespace ep = monet::testing::ep;

namespace {

// Rank `rank` of `size` with no one to talk to: for the checks that fail before any collective.
class Unconnected final : public Communicator {
 public:
  Unconnected(int rank, int size) : rank_(rank), size_(size) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string describe() const override { return "unconnected"; }
  void all_reduce_sum(float*, int64_t) override { fail(); }
  void all_reduce_sum(double*, int64_t) override { fail(); }
  using Communicator::all_reduce_sum;
  std::vector<float> all_to_all_v(const float*, const std::vector<int64_t>&,
                                  std::vector<int64_t>&) override {
    fail();
  }
  void broadcast(void*, int64_t, int) override { fail(); }
  void barrier() override { fail(); }
  [[noreturn]] void abort(int) override { fail(); }

 private:
  [[noreturn]] static void fail() { throw std::logic_error("Unconnected: a collective ran"); }
  int rank_, size_;
};

// Every bit of a and b equal (so +0 ≠ −0 and NaN = NaN of the same payload).
::testing::AssertionResult SameBits(const char* what, const Tensor& a, const Tensor& b) {
  if (!a.defined() || !b.defined())
    return a.defined() == b.defined() ? ::testing::AssertionSuccess()
                                      : ::testing::AssertionFailure() << what << ": one undefined";
  if (a.shape() != b.shape())
    return ::testing::AssertionFailure()
           << what << ": shapes " << shape_str(a.shape()) << " and " << shape_str(b.shape());
  const std::vector<float> va = a.to_vector<float>(), vb = b.to_vector<float>();
  for (size_t i = 0; i < va.size(); ++i)
    if (std::memcmp(&va[i], &vb[i], sizeof(float)) != 0)
      return ::testing::AssertionFailure() << what << "[" << i << "]: " << va[i] << " vs " << vb[i];
  return ::testing::AssertionSuccess();
}

struct Outcome {
  Tensor y, gx, ggates, gw1, gw2;
  DispatchStats stats;
};

// One forward and backward (upstream gradient p.gy) on fresh leaves copied from p.
template <class F>
Outcome run(const ep::Problem& p, F&& dispatch) {
  Outcome r;
  Tensor x = ep::rows_leaf(p.x, 0, p.spec.n), gates = ep::rows_leaf(p.gates, 0, p.spec.n);
  ExpertWeights w{ep::rows_leaf(p.w.w1, 0, p.spec.experts),
                  ep::rows_leaf(p.w.w2, 0, p.spec.experts)};
  r.y = dispatch(x, gates, w, &r.stats);
  if (r.y.requires_grad()) r.y.backward(p.gy);
  r.gx = x.grad(), r.ggates = gates.grad(), r.gw1 = w.w1.grad(), r.gw2 = w.w2.grad();
  return r;
}

}  // namespace

TEST(ExpertParallel, ShardsSplitTheExperts) {
  std::unique_ptr<Communicator> one = single_process();
  ExpertShard s = expert_shard(8, *one);
  EXPECT_EQ(s.first, 0);
  EXPECT_EQ(s.count, 8);
  s = expert_shard(8, Unconnected(2, 4));
  EXPECT_EQ(s.first, 4);
  EXPECT_EQ(s.count, 2);
  EXPECT_TRUE(ThrowsWith([] { expert_shard(6, Unconnected(0, 4)); },
                         {"expert_shard", "6 experts", "4 ranks"}));
  EXPECT_TRUE(ThrowsWith([&] { expert_shard(0, *one); }, {"0 experts"}));
}

TEST(ExpertParallel, AllToAllRowsOnOneProcessIsACopy) {
  std::unique_ptr<Communicator> one = single_process();
  Generator g(11);
  Tensor x = randn({5, 3}, g).requires_grad_(), gy = randn({5, 3}, g);
  std::vector<int64_t> got;
  Tensor y = all_to_all_rows(x, {5}, *one, &got);
  EXPECT_EQ(got, (std::vector<int64_t>{5}));
  EXPECT_TRUE(SameBits("y", y, x));
  y.backward(gy);
  EXPECT_TRUE(SameBits("dx", x.grad(), gy));
  Tensor none = all_to_all_rows(zeros({0, 3}), {0}, *one);  // no rows at all
  EXPECT_EQ(none.shape(), (Shape{0, 3}));
  EXPECT_TRUE(ThrowsWith([&] { all_to_all_rows(x, {2, 3}, *one); }, {"2 send counts", "1 ranks"}));
  EXPECT_TRUE(ThrowsWith([&] { all_to_all_rows(x, {4}, *one); }, {"add up to 4", "5 rows"}));
  EXPECT_TRUE(ThrowsWith([&] { all_to_all_rows(x.detach().to(DType::F64), {5}, *one); },
                         {"all_to_all_rows", "F32", "F64"}));
  EXPECT_TRUE(ThrowsWith([&] { all_to_all_rows(zeros({5}), {5}, *one); }, {"[5]"}));
}

TEST(ExpertParallel, CountsGatherIsExactOnOneProcess) {
  std::unique_ptr<Communicator> one = single_process();
  const std::vector<int64_t> c{0, 3, (int64_t{1} << 40) + 1};
  EXPECT_EQ(all_gather_counts(c, *one), c);
  EXPECT_TRUE(ThrowsWith([&] { all_gather_counts({-1}, *one); }, {"count -1"}));
}

TEST(ExpertParallel, OneProcessEqualsDroplessBitForBit) {
  std::unique_ptr<Communicator> one = single_process();
  ep::Spec spec;  // 24 tokens, k = 2, 8 experts, expert 5 unused, about 1 slot in 8 masked
  for (nn::Activation act : {nn::Activation::ReLU2, nn::Activation::GELU})
    for (uint64_t seed : {1, 2, 3}) {
      spec.seed = seed;
      const ep::Problem p = ep::make_problem(spec);
      ASSERT_NE(std::count(p.idx_host.begin(), p.idx_host.end(), -1), 0) << "no masked slot";
      Outcome want =
          run(p, [&](const Tensor& x, const Tensor& gates, const ExpertWeights& w,
                     DispatchStats* st) { return moe_dropless(x, p.idx, gates, w, act, st); });
      Outcome got = run(
          p, [&](const Tensor& x, const Tensor& gates, const ExpertWeights& w, DispatchStats* st) {
            return moe_dropless_ep(x, p.idx, gates, w, spec.experts, act, *one, st);
          });
      SCOPED_TRACE(::testing::Message() << nn::activation_name(act) << ", seed " << seed);
      EXPECT_TRUE(SameBits("y", got.y, want.y));
      EXPECT_TRUE(SameBits("dx", got.gx, want.gx));
      EXPECT_TRUE(SameBits("dgates", got.ggates, want.ggates));
      EXPECT_TRUE(SameBits("dw1", got.gw1, want.gw1));
      EXPECT_TRUE(SameBits("dw2", got.gw2, want.gw2));
      EXPECT_EQ(got.stats.counts, want.stats.counts);
      EXPECT_EQ(got.stats.counts[5], 0);  // the unused expert: an empty group on both paths
      EXPECT_EQ(got.stats.assigned, want.stats.assigned);
      EXPECT_EQ(one->traffic().all_to_all_bytes, 0);  // one process sends nothing
    }
}

TEST(ExpertParallel, EveryPairMaskedGivesZerosLikeDropless) {
  std::unique_ptr<Communicator> one = single_process();
  ep::Spec spec;
  spec.masked_in_8 = 8;  // every slot −1
  const ep::Problem p = ep::make_problem(spec);
  Tensor want = moe_dropless(p.x, p.idx, p.gates, p.w, nn::Activation::ReLU2);
  Tensor got = moe_dropless_ep(p.x, p.idx, p.gates, p.w, 8, nn::Activation::ReLU2, *one);
  EXPECT_TRUE(SameBits("y", got, want));
}

TEST(ExpertParallel, BadInputsThrow) {
  std::unique_ptr<Communicator> one = single_process();
  const ep::Problem p = ep::make_problem({});
  const auto relu2 = nn::Activation::ReLU2;
  // 8 experts on 3 ranks: fails before any collective, naming both numbers.
  Unconnected third(0, 3);
  EXPECT_TRUE(ThrowsWith([&] { moe_dropless_ep(p.x, p.idx, p.gates, p.w, 8, relu2, third); },
                         {"8 experts", "3 ranks"}));
  // Rank 1 of 2 holds 4 of the 8 experts: the full stack is the wrong local shape.
  Unconnected half(1, 2);
  EXPECT_TRUE(ThrowsWith([&] { moe_dropless_ep(p.x, p.idx, p.gates, p.w, 8, relu2, half); },
                         {"moe_dropless_ep", "E/R = 4", "[8, 5, 6]", "2 ranks"}));
  ExpertWeights narrow{slice(p.w.w1, 2, 0, 4), p.w.w2};  // d = 4 ≠ 6
  EXPECT_TRUE(ThrowsWith([&] { moe_dropless_ep(p.x, p.idx, p.gates, narrow, 8, relu2, *one); },
                         {"moe_dropless_ep", "w1 [8, 5, 4]"}));
  EXPECT_TRUE(ThrowsWith(
      [&] { moe_dropless_ep(p.x.detach().to(DType::F64), p.idx, p.gates, p.w, 8, relu2, *one); },
      {"moe_dropless_ep", "F32"}));
  EXPECT_TRUE(
      ThrowsWith([&] { moe_dropless_ep(p.x, p.idx, slice(p.gates, 1, 0, 1), p.w, 8, relu2, *one); },
                 {"moe_dropless_ep", "gates"}));
  // An expert id beyond E: the global count, not the local one, bounds it.
  Tensor bad = from_vector(std::vector<int32_t>(48, 8), {24, 2});
  EXPECT_TRUE(ThrowsWith([&] { moe_dropless_ep(p.x, bad, p.gates, p.w, 8, relu2, *one); },
                         {"moe_dropless_ep", "expert index 8", "[-1, 8)"}));
}
