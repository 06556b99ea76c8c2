// Tensor basics: views share storage, contiguous() copies only when it must, errors name the op
// and the shapes, the RNG is reproducible, the tracking allocator and the FLOP counter count right.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/flops.h"
#include "core/memory.h"
#include "core/ops.h"
#include "core/random.h"

using namespace monet;
using ::testing::AllOf;
using ::testing::HasSubstr;

#define EXPECT_ERROR_WITH(stmt, ...)                                   \
  try {                                                                \
    stmt;                                                              \
    ADD_FAILURE() << "expected monet::Error from " #stmt;              \
  } catch (const Error& e) {                                           \
    EXPECT_THAT(std::string(e.what()), AllOf(__VA_ARGS__));            \
  }

TEST(Tensor, ViewsShareStorageAndSeeWrites) {
  Tensor a = from_vector<float>({0, 1, 2, 3, 4, 5}, {2, 3});
  Tensor t = a.transpose(0, 1), s = a.slice(1, 1, 3), r = a.reshape({3, 2}), e = a.slice(0, 0, 1).expand({4, 3});
  for (const Tensor& v : {t, s, r, e}) EXPECT_EQ(v.storage(), a.storage());
  EXPECT_FALSE(t.is_contiguous());
  EXPECT_EQ(t.strides(), (Shape{1, 3}));
  EXPECT_EQ(e.strides()[0], 0);
  copy_(s, from_vector<float>({9, 9}, {1, 2}).expand({2, 2}));  // write through a view
  EXPECT_EQ(a.to_vector<float>(), (std::vector<float>{0, 9, 9, 3, 9, 9}));
  EXPECT_EQ(t.to_vector<float>(), (std::vector<float>{0, 3, 9, 9, 9, 9}));
}

TEST(Tensor, ContiguousCopiesOnlyWhenNeeded) {
  Tensor a = zeros({4, 5});
  EXPECT_TRUE(a.contiguous().same(a));
  EXPECT_TRUE(a.slice(0, 1, 3).is_contiguous());  // a block of whole rows stays dense
  Tensor t = a.transpose(0, 1).contiguous();
  EXPECT_NE(t.storage(), a.storage());
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(a.slice(0, 1, 3).reshape({10}).storage(), a.storage());     // reshape of dense: a view
  EXPECT_NE(a.transpose(0, 1).reshape({20}).storage(), a.storage());    // of a transpose: a copy
}

TEST(Tensor, ShapeErrorsNameTheOpAndBothShapes) {
  Tensor a = zeros({2, 3}), b = zeros({4});
  EXPECT_ERROR_WITH(add(a, b), HasSubstr("add"), HasSubstr("[2, 3]"), HasSubstr("[4]"));
  EXPECT_ERROR_WITH(matmul(a, zeros({2, 3})), HasSubstr("matmul"), HasSubstr("[2, 3]"));
  EXPECT_ERROR_WITH(a.reshape({4, 2}), HasSubstr("reshape"), HasSubstr("[2, 3]"), HasSubstr("[4, 2]"));
  EXPECT_ERROR_WITH(rms_norm(a, ones({4})), HasSubstr("rms_norm"), HasSubstr("[4]"), HasSubstr("[2, 3]"));
  EXPECT_ERROR_WITH(concat({a, zeros({3, 2})}, 0), HasSubstr("concat"), HasSubstr("[3, 2]"));
  EXPECT_ERROR_WITH(cross_entropy(a, zeros({3}, DType::I32)), HasSubstr("cross_entropy"), HasSubstr("[2]"), HasSubstr("[3]"));
  EXPECT_ERROR_WITH(a.item(), HasSubstr("item"), HasSubstr("6"));
  EXPECT_ERROR_WITH(a.slice(1, 2, 5), HasSubstr("slice"), HasSubstr("[2, 3]"));
  EXPECT_ERROR_WITH(topk(a, 4), HasSubstr("topk"));
  EXPECT_ERROR_WITH(embedding(zeros({5, 2}), from_vector<int32_t>({7}, {1})), HasSubstr("out of range"));
  EXPECT_ERROR_WITH(a.data<double>(), HasSubstr("F32"));
  EXPECT_ERROR_WITH(a.to(Device::cuda()), HasSubstr("cuda"));
}

TEST(Tensor, FactoriesAndCasts) {
  EXPECT_EQ(arange(4).to_vector<int32_t>(), (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(full({2}, 2.5).to_vector<float>(), (std::vector<float>{2.5f, 2.5f}));
  Tensor d = from_vector<float>({1.5f, -2.f}, {2}).to(DType::F64);
  EXPECT_EQ(d.dtype(), DType::F64);
  EXPECT_EQ(d.to_vector<double>(), (std::vector<double>{1.5, -2.0}));
  EXPECT_EQ(scalar(3.0).dim(), 0);
  EXPECT_EQ(scalar(3.0).numel(), 1);
}

TEST(Random, SameSeedSameNumbersAndRestorableState) {
  Generator a(5), b(5);
  EXPECT_EQ(randn({16}, a).to_vector<float>(), randn({16}, b).to_vector<float>());
  auto st = a.state();
  std::vector<float> next = randn({8}, a).to_vector<float>();
  Generator c(999);
  c.set_state(st);
  EXPECT_EQ(randn({8}, c).to_vector<float>(), next);
  Generator d(6);
  EXPECT_NE(randn({4}, d).to_vector<float>(), randn({4}, b).to_vector<float>());
}

TEST(Random, NormalAndUniformHaveTheirMoments) {
  Generator g(1);
  const int64_t n = 200000;
  std::vector<double> x = randn({n}, g, DType::F64).to_vector<double>();
  double m = 0, v = 0;
  for (double t : x) m += t;
  m /= n;
  for (double t : x) v += (t - m) * (t - m);
  v /= n;
  EXPECT_NEAR(m, 0.0, 0.01);  // standard error 1/√n ≈ 0.0022
  EXPECT_NEAR(v, 1.0, 0.01);
  std::vector<double> u = rand({n}, g, DType::F64).to_vector<double>();
  double mu = 0, lo = 1, hi = 0;
  for (double t : u) mu += t, lo = std::min(lo, t), hi = std::max(hi, t);
  EXPECT_NEAR(mu / n, 0.5, 0.005);
  EXPECT_GE(lo, 0.0);
  EXPECT_LT(hi, 1.0);
}

TEST(Memory, TrackingAllocatorCountsCurrentAndPeak) {
  memory::reset_peak(DeviceType::CPU);
  const MemoryStats s0 = memory::stats(DeviceType::CPU);
  {
    Tensor a = empty({1000});        // 4000 bytes
    {
      Tensor b = empty({500}, DType::F64);  // 4000 bytes: peak = +8000
    }
    Tensor c = empty({250});         // 1000 bytes: current = +5000, below the peak
    const MemoryStats s1 = memory::stats(DeviceType::CPU);
    EXPECT_EQ(s1.current - s0.current, 5000);
    EXPECT_EQ(s1.peak - s0.current, 8000);
    EXPECT_EQ(s1.largest_allocation, 4000);
  }
  EXPECT_EQ(memory::stats(DeviceType::CPU).current, s0.current);
  // A meta tensor is counted (for predicted sizes) but owns no memory.
  Tensor m = empty({1 << 20}, DType::F32, Device::meta());
  EXPECT_EQ(m.storage()->data(), nullptr);
  EXPECT_EQ(memory::stats(DeviceType::Meta).current, 4 << 20);
}

TEST(Memory, HostCacheReusesFreedBlocksAndCountsOnlyLiveBytes) {
  EXPECT_EQ(BlockCache::round_size(1), 512u);
  EXPECT_EQ(BlockCache::round_size(513), 1024u);
  EXPECT_EQ(BlockCache::round_size((1 << 20) + 1), size_t{5} << 18);  // 1.25 MiB
  for (size_t n : {size_t{1}, size_t{4097}, size_t{3} << 20, (size_t{7} << 27) + 5}) {
    EXPECT_GE(BlockCache::round_size(n), n);
    EXPECT_LE(BlockCache::round_size(n), n + n / 4 + 512);  // at most 25% (or 512 B) of waste
  }
  const int64_t live = memory::stats(DeviceType::CPU).current;
  void* first = nullptr;
  { first = empty({12345}).raw_data(); }
  EXPECT_EQ(memory::stats(DeviceType::CPU).current, live);  // the cached block is not counted
  const BlockCacheStats before = memory::host_cache_stats();
  EXPECT_GE(before.cached, static_cast<int64_t>(BlockCache::round_size(12345 * 4)));
  Tensor again = empty({12300});  // the same bin: the same block, no system allocation
  EXPECT_EQ(again.raw_data(), first);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(again.raw_data()) % 64, 0u);
  const BlockCacheStats after = memory::host_cache_stats();
  EXPECT_EQ(after.raw_allocs, before.raw_allocs);
  EXPECT_EQ(after.reuses, before.reuses + 1);
  memory::empty_host_cache();
  EXPECT_EQ(memory::host_cache_stats().cached, 0);
  fill_(again, 2.0);  // a block in use is untouched by empty_host_cache
  EXPECT_EQ(sum(again).item(), 2.0 * 12300);
}

TEST(Memory, BlockCacheGivesBackBeyondItsLimitAndRetriesWhenOutOfMemory) {
  static int frees = 0, fails = 0;
  auto alloc = [](size_t n) -> void* {
    if (fails > 0) return --fails, nullptr;
    return std::malloc(n);
  };
  auto release = [](void* p) { ++frees, std::free(p); };
  BlockCache c(alloc, release, 1024);  // keeps at most 1 KiB of free blocks
  void* a = c.allocate(512);
  void* b = c.allocate(600);  // a 1024-byte bin
  c.release(a, 512);          // cached (512 ≤ 1024)
  c.release(b, 600);          // 512 + 1024 > 1024: given back
  EXPECT_EQ(frees, 1);
  EXPECT_EQ(c.stats().cached, 512);
  fails = 1;  // the raw allocator fails once: the cache is emptied, then the retry succeeds
  void* d = c.allocate(4096);
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(frees, 2);
  EXPECT_EQ(c.stats().cached, 0);
  fails = 2;  // fails twice: nullptr, for the caller to report
  EXPECT_EQ(c.allocate(8192), nullptr);
  c.release(d, 4096);
  c.empty();
  EXPECT_EQ(c.stats().reserved, 0);
}

TEST(Memory, BlockCacheWithALimitOfZeroGivesEveryBlockBack) {
  static int frees = 0;
  BlockCache c([](size_t n) { return std::malloc(n); }, [](void* p) { ++frees, std::free(p); },
               1 << 20);
  c.release(c.allocate(512), 512);
  c.release(c.allocate(2048), 2048);
  EXPECT_EQ(c.stats().cached, 512 + 2048);
  EXPECT_EQ(frees, 0);
  c.set_max_cached(0);  // what the host cache does at exit
  EXPECT_EQ(frees, 2);
  EXPECT_EQ(c.stats().cached, 0);
  c.release(c.allocate(512), 512);  // from now on a released block goes straight back
  EXPECT_EQ(frees, 3);
  EXPECT_EQ(c.stats().reserved, 0);
}

// Constant-initialised, so destroyed at exit after every static constructed at run time, the host
// cache's own included: its block is released after main, when the cache used to be a destroyed
// map (a heap-use-after-free, which the sanitizer stage, scripts/sanitize.sh, reports).
namespace {
Tensor g_released_after_main;
}  // namespace

TEST(Memory, TensorsReleasedAfterMainFindTheHostCache) {
  g_released_after_main = full({1000}, 1.0);
  EXPECT_EQ(sum(g_released_after_main).item(), 1000.0);
}

TEST(Flops, MatmulSoftmaxAndMlpCountThemselves) {
  Tensor a = zeros({8, 16}), w1 = zeros({16, 32}), w2 = zeros({32, 4});
  {
    FlopCounter c;
    matmul(a, w1);
    EXPECT_EQ(c.total(), 2 * 8 * 16 * 32);
  }
  {
    FlopCounter c;
    softmax(a, -1);
    EXPECT_EQ(c.total(), 5 * 8 * 16);
  }
  {
    FlopCounter c;
    {
      FlopScope s("mlp");
      matmul(relu(matmul(a, w1)), w2);  // 2·8·16·32 + 8·32 + 2·8·32·4
    }
    EXPECT_EQ(c.by_category().at("mlp"), 2 * 8 * 16 * 32 + 8 * 32 + 2 * 8 * 32 * 4);
  }
  FlopCounter none;
  EXPECT_EQ(none.total(), 0);
}

TEST(Flops, BackwardCountsIntoTheForwardCategory) {
  Tensor a = ones({8, 16}).requires_grad_(), w = ones({16, 32}).requires_grad_();
  FlopCounter c;
  Tensor y;
  {
    FlopScope s("routing");
    y = matmul(a, w);
  }
  Tensor loss = sum(y);  // outside the scope: "other"
  loss.backward();       // outside the scope too, but matmul's backward is routing work
  // Forward 2·8·16·32, backward dA = dY·Wᵀ and dW = Aᵀ·dY, 2·8·32·16 each.
  EXPECT_EQ(c.by_category().at("routing"), 3 * 2 * 8 * 16 * 32);
  EXPECT_GT(c.by_category().at("other"), 0);
}

// BF16 is a storage type (core/dtype.h): casts in and out round to nearest even through float,
// and an op given a BF16 tensor says to convert it first.
TEST(TensorBf16, CastsRoundToNearestEvenAndOpsRefuseIt) {
  const std::vector<float> v = {1.0f, 1.00390625f, 1.01171875f, -3.14159f, 65504.0f, 1e-20f};
  Tensor x = from_vector<float>(v, {2, 3});
  Tensor h = x.to(DType::BF16);
  EXPECT_EQ(h.dtype(), DType::BF16);
  EXPECT_EQ(h.storage()->nbytes(), 6 * 2u);
  std::vector<float> want;
  for (float f : v) want.push_back(from_bf16(to_bf16(f)));
  EXPECT_EQ(h.to(DType::F32).to_vector<float>(), want);
  EXPECT_EQ(want[1], 1.0f);       // 1 + 2⁻⁸ is a tie: to the even 1
  EXPECT_EQ(want[2], 1.015625f);  // 1 + 3·2⁻⁸ is a tie: to the even 1 + 2⁻⁶
  EXPECT_EQ(x.to(DType::F64).to(DType::BF16).to(DType::F32).to_vector<float>(), want);
  EXPECT_EQ(from_vector<int32_t>({3, -257}, {2}).to(DType::BF16).to(DType::F32).to_vector<float>(),
            (std::vector<float>{3.0f, -256.0f}));  // 257 needs 9 bits: to the even 256
  Tensor t = h.transpose(0, 1).to(DType::F32);     // a strided BF16 view
  EXPECT_EQ(t.contiguous().to_vector<float>()[1], want[3]);
  try {
    (void)add(h, h);
    ADD_FAILURE() << "add accepted BF16";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("BF16 is a storage type"), std::string::npos) << e.what();
  }
}
