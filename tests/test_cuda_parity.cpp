// The CUDA backend checked against the CPU backend, in the style of ggml's test-backend-ops: the
// parity cases of the op table (tests/op_cases.h, shared with the gradient checks; random F32
// inputs, broadcast and non-contiguous views included) run forward and backward on both devices,
// and the outputs and input gradients must agree in normalised mean squared error,
//   nmse(cuda, cpu) = Σ (cuda − cpu)² / Σ cpu²,
// below the case's threshold (kDefault 1e-7, kTranscendental 1e-6, kExact 0: see op_cases.h);
// plus the caching allocator (reuse, bins, the memory counters), the device probe and the errors.
//
// Without a device every test that needs one calls GTEST_SKIP() with the reason (CTest reports
// them as skipped); the probe and error tests run in every build with the backend.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/memory.h"
#include "core/ops.h"
#include "core/random.h"
#include "op_cases.h"
#ifdef MONET_WITH_CUDA
#include "core/cuda/allocator.h"
#include "core/cuda/device.h"
#endif

using namespace monet;
using monet::testing::CaseOutcome;
using monet::testing::kTranscendental;
using monet::testing::nmse;
using monet::testing::OpCase;
using monet::testing::random_ids;

namespace {

// Why the device tests cannot run here; empty when they can.
std::string no_device_reason() {
#ifdef MONET_WITH_CUDA
  return cuda::available() ? std::string() : cuda::unavailable_reason();
#else
  return "this build has no CUDA backend (configured without nvcc or with -DMONET_CUDA=OFF)";
#endif
}

#define SKIP_WITHOUT_CUDA()                                            \
  do {                                                                 \
    const std::string reason = no_device_reason();                     \
    if (!reason.empty()) GTEST_SKIP() << "no CUDA device: " << reason; \
  } while (0)

const Device kCuda = Device::cuda();
const Device kCpu = Device::cpu();

class CudaParity : public ::testing::TestWithParam<OpCase> {};

TEST_P(CudaParity, ForwardAndBackwardMatchCpu) {
  SKIP_WITHOUT_CUDA();
  const OpCase& c = GetParam();
  Generator g(42);
  std::vector<Tensor> inputs;
  for (const Shape& s : c.shapes) inputs.push_back(uniform(s, c.lo, c.hi, g));
  CaseOutcome cpu = monet::testing::run_case(c, inputs, kCpu),
              gpu = monet::testing::run_case(c, inputs, kCuda);
  ASSERT_EQ(gpu.out.shape(), cpu.out.shape()) << c.name;
  EXPECT_LE(nmse(gpu.out, cpu.out), c.parity_nmse) << c.name << ": forward";
  ASSERT_EQ(gpu.grads.size(), cpu.grads.size());
  for (size_t i = 0; i < cpu.grads.size(); ++i)
    EXPECT_LE(nmse(gpu.grads[i], cpu.grads[i]), c.parity_nmse)
        << c.name << ": gradient of input " << i;
}

INSTANTIATE_TEST_SUITE_P(CudaOps, CudaParity,
                         ::testing::ValuesIn(monet::testing::op_cases_for(monet::testing::kParity)),
                         monet::testing::op_case_name);

// ---- copies between and on the devices ----

TEST(CudaCopy, RoundTripIsExactForEveryDtype) {
  SKIP_WITHOUT_CUDA();
  Generator g(1);
  Tensor f = randn({7, 9}, g);
  EXPECT_EQ(f.to(kCuda).to(kCpu).to_vector<float>(), f.to_vector<float>());
  Tensor d = randn({5}, g, DType::F64);
  EXPECT_EQ(d.to(kCuda).to(kCpu).to_vector<double>(), d.to_vector<double>());
  Tensor i = from_vector<int32_t>({3, -1, 7, 1 << 30}, {2, 2});
  EXPECT_EQ(i.to(kCuda).to(kCpu).to_vector<int32_t>(), i.to_vector<int32_t>());
  Tensor empty_t = empty({0, 3}).to(kCuda);
  EXPECT_EQ(empty_t.to(kCpu).numel(), 0);
}

TEST(CudaCopy, StridedAndBroadcastSources) {
  SKIP_WITHOUT_CUDA();
  Generator g(2);
  Tensor a = randn({4, 6, 5}, g);
  Tensor view = slice(permute(a, {2, 0, 1}), 2, 1, 5);  // non-contiguous, offset
  EXPECT_EQ(view.to(kCuda).to(kCpu).to_vector<float>(), view.contiguous().to_vector<float>());
  // copy_ of a broadcast row into a strided view of a device tensor, with a cast
  Tensor dst = zeros({3, 8}, DType::F32, kCuda);
  Tensor row = from_vector<int32_t>({1, 2, 3, 4}, {4}).to(kCuda);
  copy_(slice(dst, 1, 2, 6), row);
  std::vector<float> want(24, 0.0f);
  for (int r = 0; r < 3; ++r)
    for (int j = 0; j < 4; ++j) want[r * 8 + 2 + j] = static_cast<float>(j + 1);
  EXPECT_EQ(dst.to_vector<float>(), want);
  fill_(slice(dst, 0, 1, 2), -2.0);
  for (int j = 0; j < 8; ++j) want[8 + j] = -2.0f;
  EXPECT_EQ(dst.to_vector<float>(), want);
  // cast on the device
  EXPECT_EQ(dst.to(DType::I32).to_vector<int32_t>(),
            std::vector<int32_t>(want.begin(), want.end()));
}

TEST(CudaCopy, GradientFlowsBackAcrossDevices) {
  SKIP_WITHOUT_CUDA();
  Tensor x = from_vector<float>({1, 2, 3}, {3}).requires_grad_();
  Tensor y = mul(x.to(kCuda), 2.0);
  sum(y).to(kCpu).backward();
  ASSERT_TRUE(x.grad().defined());
  EXPECT_EQ(x.grad().device(), kCpu);
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{2, 2, 2}));
}

TEST(CudaCopy, MixingDevicesIsAnErrorNamingTheOp) {
  SKIP_WITHOUT_CUDA();
  Tensor a = ones({2}), b = ones({2}, DType::F32, kCuda);
  try {
    add(a, b);
    FAIL() << "add of a CPU and a CUDA tensor did not throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("add"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("cuda:0"), std::string::npos) << e.what();
  }
}

TEST(CudaCopy, F64KernelsAreRefusedByName) {
  SKIP_WITHOUT_CUDA();
  Tensor d = ones({3}, DType::F64, kCuda);  // storage and copies take any dtype
  try {
    exp(d);
    FAIL() << "exp of an F64 CUDA tensor did not throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("exp"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("F64"), std::string::npos) << e.what();
  }
}

// ---- a tiny model: loss and gradients, then a few SGD steps ----

struct TinyModel {
  Tensor emb, norm_w, w1, w2;
  std::vector<Tensor*> params() { return {&emb, &norm_w, &w1, &w2}; }
};

TinyModel tiny_model(Device d) {
  Generator g(3);
  TinyModel m;
  m.emb = normal({32, 16}, 0.0, 0.5, g).to(d).requires_grad_();
  m.norm_w = uniform({16}, 0.5, 1.5, g).to(d).requires_grad_();
  m.w1 = normal({16, 64}, 0.0, 0.25, g).to(d).requires_grad_();
  m.w2 = normal({64, 32}, 0.0, 0.125, g).to(d).requires_grad_();
  return m;
}

// embedding → RMSNorm → relu2 MLP → softmax-attention-like mixing → cross-entropy.
Tensor tiny_loss(TinyModel& m, Device d) {
  Tensor idx = random_ids({4, 12}, 32, 11, d), tgt = random_ids({4, 12}, 32, 12, d, 9);
  Tensor h = rms_norm(embedding(m.emb, idx), m.norm_w);       // [4, 12, 16]
  Tensor mix = softmax(matmul(h, transpose(h, -1, -2)), -1);  // [4, 12, 12]
  h = add(h, matmul(mix, h));
  Tensor logits = matmul(relu2(matmul(h, m.w1)), m.w2);  // [4, 12, 32]
  return cross_entropy(logits, tgt);
}

TEST(CudaModel, TinyModelLossAndGradientsMatchCpu) {
  SKIP_WITHOUT_CUDA();
  TinyModel cpu = tiny_model(kCpu), gpu = tiny_model(kCuda);
  Tensor lc = tiny_loss(cpu, kCpu), lg = tiny_loss(gpu, kCuda);
  EXPECT_NEAR(lg.item(), lc.item(), 1e-5 * std::abs(lc.item()));
  lc.backward();
  lg.backward();
  for (size_t i = 0; i < cpu.params().size(); ++i)
    EXPECT_LE(nmse(gpu.params()[i]->grad(), cpu.params()[i]->grad()), kTranscendental)
        << "parameter " << i;
}

TEST(CudaModel, SgdStepsGiveTheSameLossCurve) {
  SKIP_WITHOUT_CUDA();
  TinyModel cpu = tiny_model(kCpu), gpu = tiny_model(kCuda);
  auto step = [](TinyModel& m, Device d) {
    Tensor loss = tiny_loss(m, d);
    loss.backward();
    NoGradGuard ng;
    for (Tensor* p : m.params()) {
      copy_(*p, sub(*p, mul(p->grad(), 0.5)));
      p->set_grad(Tensor());
    }
    return loss.item();
  };
  for (int s = 0; s < 5; ++s) {
    const double lc = step(cpu, kCpu), lg = step(gpu, kCuda);
    EXPECT_NEAR(lg, lc, 1e-4 * std::abs(lc)) << "step " << s;
  }
}

// ---- the caching allocator ----

#ifdef MONET_WITH_CUDA

TEST(CudaAllocator, RoundsRequestsToBins) {  // pure arithmetic: runs without a device
  EXPECT_EQ(cuda::round_size(1), 512u);
  EXPECT_EQ(cuda::round_size(512), 512u);
  EXPECT_EQ(cuda::round_size(513), 1024u);
  EXPECT_EQ(cuda::round_size(1 << 20), size_t{1} << 20);
  EXPECT_EQ(cuda::round_size((1 << 20) + 1), size_t{5} << 18);  // 1.25 MiB
  EXPECT_EQ(cuda::round_size(3 << 20), size_t{3} << 20);
  EXPECT_EQ(cuda::round_size((4 << 20) + 1), size_t{5} << 20);  // 5 MiB
  for (size_t n : {size_t{1}, size_t{4097}, size_t{3} << 20, (size_t{7} << 27) + 5}) {
    EXPECT_GE(cuda::round_size(n), n);
    EXPECT_LE(cuda::round_size(n), n + n / 4 + 512);  // at most 25% (or 512 B) of waste
  }
}

TEST(CudaAllocator, ReusesFreedBlocks) {
  SKIP_WITHOUT_CUDA();
  cuda::synchronize();
  void* first = nullptr;
  { first = empty({1000}, DType::F32, kCuda).raw_data(); }
  const cuda::CacheStats before = cuda::cache_stats();
  EXPECT_GE(before.cached, static_cast<int64_t>(cuda::round_size(4000)));
  Tensor again = empty({1000}, DType::F32, kCuda);  // same bin: the same block, no cudaMalloc
  EXPECT_EQ(again.raw_data(), first);
  const cuda::CacheStats after = cuda::cache_stats();
  EXPECT_EQ(after.device_mallocs, before.device_mallocs);
  EXPECT_EQ(after.reuses, before.reuses + 1);
  Tensor other = empty({100000}, DType::F32, kCuda);  // another bin: a new block
  EXPECT_NE(other.raw_data(), first);
}

TEST(CudaAllocator, MemoryCountersCountTensorBytes) {
  SKIP_WITHOUT_CUDA();
  const MemoryStats s0 = memory::stats(DeviceType::CUDA);
  {
    Tensor t = empty({123}, DType::F32, kCuda);  // 492 bytes asked, a 512-byte block
    const MemoryStats s1 = memory::stats(DeviceType::CUDA);
    EXPECT_EQ(s1.current, s0.current + 492);
    EXPECT_GE(s1.peak, s1.current);
    EXPECT_EQ(s1.allocations, s0.allocations + 1);
  }
  EXPECT_EQ(memory::stats(DeviceType::CUDA).current, s0.current);
}

TEST(CudaAllocator, EmptyCacheGivesFreeBlocksBack) {
  SKIP_WITHOUT_CUDA();
  Tensor keep = empty({4096}, DType::F32, kCuda);
  { Tensor drop = empty({1 << 20}, DType::F32, kCuda); }
  EXPECT_GT(cuda::cache_stats().cached, 0);
  const int64_t reserved = cuda::cache_stats().reserved;
  cuda::empty_cache();
  const cuda::CacheStats s = cuda::cache_stats();
  EXPECT_EQ(s.cached, 0);
  EXPECT_LT(s.reserved, reserved);
  EXPECT_GE(s.reserved, static_cast<int64_t>(cuda::round_size(4096 * 4)));  // `keep` is untouched
  fill_(keep, 1.0);
  EXPECT_EQ(sum(keep).item(), 4096.0);
}

TEST(CudaAllocator, OutOfMemoryNamesCudaMalloc) {
  SKIP_WITHOUT_CUDA();
  const MemoryStats s0 = memory::stats(DeviceType::CUDA);
  try {
    empty({int64_t{1} << 46}, DType::F32, kCuda);  // 256 TiB
    FAIL() << "a 256 TiB allocation did not throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cudaMalloc"), std::string::npos) << e.what();
  }
  EXPECT_EQ(memory::stats(DeviceType::CUDA).current, s0.current);  // nothing counted
}

// ---- the probe and the errors: these run with or without a device ----

TEST(CudaDevice, ProbeNeverThrows) {
  bool ok = false;
  EXPECT_NO_THROW(ok = cuda::available());
  if (ok) {
    EXPECT_GT(cuda::device_count(), 0);
    EXPECT_TRUE(cuda::unavailable_reason().empty());
    EXPECT_FALSE(cuda::device_name().empty());
  } else {
    EXPECT_EQ(cuda::device_count(), 0);
    EXPECT_FALSE(cuda::unavailable_reason().empty());
    EXPECT_TRUE(cuda::device_name().empty());
  }
}

TEST(CudaDevice, NoDeviceIsAnErrorWithTheReason) {
  if (cuda::available()) GTEST_SKIP() << "a CUDA device is present: nothing to refuse";
  const MemoryStats s0 = memory::stats(DeviceType::CUDA);
  try {
    zeros({2}, DType::F32, kCuda);
    FAIL() << "allocating on a missing device did not throw";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("no CUDA device"), std::string::npos) << msg;
    EXPECT_NE(msg.find(cuda::unavailable_reason()), std::string::npos) << msg;
  }
  EXPECT_EQ(memory::stats(DeviceType::CUDA).current, s0.current);  // nothing counted
  EXPECT_EQ(empty({0}, DType::F32, kCuda).numel(), 0);             // no bytes: no device needed
}

TEST(CudaErrors, ChecksNameTheCall) {
  try {
    MONET_CUDA_CHECK(cudaSetDevice(-1));  // invalid with or without a device
    FAIL() << "cudaSetDevice(-1) did not throw";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("cudaSetDevice(-1)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("cudaError"), std::string::npos) << msg;
    EXPECT_NE(msg.find("test_cuda_parity.cpp"), std::string::npos) << msg;
  }
  try {
    cuda::check(CUBLAS_STATUS_INVALID_VALUE, "cublasSgemmStridedBatched(h, ...)", "x.cpp", 7);
    FAIL() << "a cuBLAS error did not throw";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("cublasSgemmStridedBatched"), std::string::npos) << msg;
    EXPECT_NE(msg.find("CUBLAS_STATUS_INVALID_VALUE"), std::string::npos) << msg;
  }
  EXPECT_NO_THROW(cuda::check(cudaSuccess, "cudaFree(p)", "x.cpp", 1));
}

#endif  // MONET_WITH_CUDA

}  // namespace
