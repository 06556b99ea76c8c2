// The CUDA backend checked against the CPU backend, in the style of ggml's test-backend-ops: every
// op of the core from one table of cases (random F32 inputs, broadcast and non-contiguous views
// included) runs forward and backward on both devices, and the outputs and input gradients must
// agree in normalised mean squared error,
//   nmse(cuda, cpu) = Σ (cuda − cpu)² / Σ cpu²,
// below the case's threshold. Thresholds (float32 on both sides; the backends differ only in
// summation order and in the libm of each side, so a correct kernel lands near 1e-13):
//   1e-7  default: arithmetic, matmul, reductions, norms, indexing, shape ops
//   1e-6  exp/log/tanh-heavy ops (exp, gelu, silu, sigmoid, softplus, softmax family, loss)
//   0     index outputs (max / top-k indices, comparisons): they must be identical
// plus the caching allocator (reuse, bins, the memory counters), the device probe and the errors.
//
// Without a device every test that needs one calls GTEST_SKIP() with the reason (CTest reports
// them as skipped); the probe and error tests run in every build with the backend.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/memory.h"
#include "core/ops.h"
#include "core/random.h"
#ifdef MONET_WITH_CUDA
#include "core/cuda/allocator.h"
#include "core/cuda/device.h"
#endif

using namespace monet;
using X = std::vector<Tensor>;

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

// Σ(a − b)² / Σ b², or the plain Σ(a − b)² when b is all zeros.
double nmse(const Tensor& a, const Tensor& b) {
  std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  EXPECT_EQ(x.size(), y.size());
  double err = 0, ref = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
    err += (x[i] - y[i]) * (x[i] - y[i]);
    ref += y[i] * y[i];
  }
  return ref > 0 ? err / ref : err;
}

// ---- the case table ----

constexpr double kDefault = 1e-7, kTranscendental = 1e-6, kExact = 0.0;

struct Case {
  std::string name;
  std::function<Tensor(const X&)> f;  // builds on the device of its inputs
  std::vector<Shape> shapes;
  double lo = -1.0, hi = 1.0;  // input range, away from kinks and poles where the op has them
  double threshold = kDefault;
  bool grad = true;  // also compare the input gradients of Σ f(x) ⊙ w
};

Device dev(const X& x) {
  return x[0].device();
}
Tensor ids(const std::vector<int32_t>& v, const Shape& s, Device d) {
  return from_vector(v, s).to(d);
}
// Random indices in [0, n), fixed by the seed: the same on both devices.
Tensor random_ids(const Shape& s, int64_t n, uint64_t seed, Device d, int32_t every_ignored = 0) {
  Generator g(seed);
  std::vector<int32_t> v(static_cast<size_t>(shape_numel(s)));
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = every_ignored && i % every_ignored == 1 ? -100 : static_cast<int32_t>(g.randint(n));
  return ids(v, s, d);
}
Tensor zero_like_scalar(const X& x) {
  return zeros({}, DType::F32, dev(x));
}

std::vector<Case> cases() {
  const double T = kTranscendental;
  return {
      // elementwise, binary with broadcasting
      {"add_same", [](const X& x) { return add(x[0], x[1]); }, {{64, 33}, {64, 33}}},
      {"add_broadcast", [](const X& x) { return add(x[0], x[1]); }, {{3, 1, 4}, {2, 1}}},
      {"add_broadcast_large", [](const X& x) { return add(x[0], x[1]); }, {{17, 300, 3}, {300, 1}}},
      {"sub_broadcast", [](const X& x) { return sub(x[0], x[1]); }, {{4}, {3, 1}}},
      {"mul_broadcast", [](const X& x) { return mul(x[0], x[1]); }, {{2, 1, 3}, {1, 4, 1}}},
      {"mul_self", [](const X& x) { return mul(x[0], x[0]); }, {{5}}},
      {"div_broadcast", [](const X& x) { return div(x[0], x[1]); }, {{2, 3}, {3}}, 0.5, 2.0},
      {"add_transposed",
       [](const X& x) { return add(transpose(x[0], 0, 1), x[1]); },
       {{3, 2}, {2, 3}}},
      {"mul_expanded",
       [](const X& x) {
         return mul(expand(x[0], {3, 4}), x[1]);
       },
       {{1, 4}, {3, 4}}},
      {"sub_sliced_permuted",
       [](const X& x) {
         return sub(slice(permute(x[0], {2, 0, 1}), 1, 1, 4), x[1]);
       },
       {{5, 3, 6}, {6, 3, 1}}},
      // scalar and unary
      {"add_scalar", [](const X& x) { return add(x[0], 2.5); }, {{2, 3}}},
      {"mul_scalar", [](const X& x) { return mul(x[0], -1.5); }, {{2, 3}}},
      {"neg", [](const X& x) { return neg(x[0]); }, {{3, 2}}},
      {"exp_transposed", [](const X& x) { return exp(transpose(x[0], 0, 1)); }, {{3, 2}}, -1, 1, T},
      {"log", [](const X& x) { return log(x[0]); }, {{2, 3}}, 0.3, 2.0, T},
      {"sqrt", [](const X& x) { return sqrt(x[0]); }, {{2, 3}}, 0.3, 2.0},
      {"rsqrt", [](const X& x) { return rsqrt(x[0]); }, {{2, 3}}, 0.3, 2.0},
      {"pow_2_5", [](const X& x) { return pow(x[0], 2.5); }, {{2, 3}}, 0.3, 2.0, T},
      {"pow_3_signed", [](const X& x) { return pow(x[0], 3.0); }, {{2, 3}}, -2.0, -0.2, T},
      {"relu_mixed", [](const X& x) { return relu(x[0]); }, {{1000}}},
      {"relu2_sliced", [](const X& x) { return relu2(slice(x[0], 1, 1, 3)); }, {{2, 4}}},
      {"gelu", [](const X& x) { return gelu(x[0]); }, {{2, 5}}, -3.0, 3.0, T},
      {"silu", [](const X& x) { return silu(x[0]); }, {{2, 5}}, -3.0, 3.0, T},
      {"sigmoid", [](const X& x) { return sigmoid(x[0]); }, {{2, 5}}, -4.0, 4.0, T},
      {"softplus", [](const X& x) { return softplus(x[0]); }, {{2, 5}}, -4.0, 4.0, T},
      // comparisons and selection
      {"greater",
       [](const X& x) { return greater(x[0], x[1]); },
       {{4, 5}, {5}},
       -1,
       1,
       kExact,
       false},
      {"greater_equal_int",
       [](const X& x) {
         return cast(greater_equal(cast(mul(x[0], 4.0), DType::I32), cast(x[1], DType::I32)),
                     DType::F32);
       },
       {{4, 5}, {4, 1}},
       -1,
       1,
       kExact,
       false},
      {"equal",
       [](const X& x) { return equal(x[0], transpose(x[0], 0, 1)); },
       {{3, 3}},
       -1,
       1,
       kExact,
       false},
      {"where",
       [](const X& x) { return where(greater(x[0], zero_like_scalar(x)), x[1], x[2]); },
       {{2, 3}, {2, 3}, {3}}},
      {"where_int_cond",
       [](const X& x) {
         return where(cast(greater(x[0], zero_like_scalar(x)), DType::I32), x[1], x[2]);
       },
       {{4, 1}, {4, 6}, {6}}},
      {"masked_fill",
       [](const X& x) { return masked_fill(x[0], greater(x[0], zero_like_scalar(x)), -5.0); },
       {{3, 4}}},
      // matmul: every transpose case, batched with broadcast batch axes, a shared 2-D weight
      {"matmul_nn", [](const X& x) { return matmul(x[0], x[1]); }, {{3, 4}, {4, 2}}},
      {"matmul_tn",
       [](const X& x) { return matmul(transpose(x[0], 0, 1), x[1]); },
       {{4, 3}, {4, 2}}},
      {"matmul_nt",
       [](const X& x) { return matmul(x[0], transpose(x[1], 0, 1)); },
       {{3, 4}, {2, 4}}},
      {"matmul_tt",
       [](const X& x) { return matmul(transpose(x[0], 0, 1), transpose(x[1], 0, 1)); },
       {{4, 3}, {2, 4}}},
      {"matmul_batched_broadcast",
       [](const X& x) { return matmul(x[0], x[1]); },
       {{2, 1, 3, 4}, {3, 4, 2}}},
      {"matmul_batched_transposed",
       [](const X& x) { return matmul(transpose(x[0], -1, -2), x[1]); },
       {{3, 20, 30}, {3, 20, 10}}},
      {"matmul_shared_weight",
       [](const X& x) { return matmul(x[0], x[1]); },
       {{2, 3, 65, 70}, {70, 33}}},
      {"matmul_sliced",
       [](const X& x) { return matmul(slice(x[0], 1, 1, 4), x[1]); },
       {{3, 5}, {3, 2}}},
      {"matmul_row_vector", [](const X& x) { return matmul(x[0], x[1]); }, {{1, 4}, {4, 1}}},
      // reductions
      {"sum_all", [](const X& x) { return sum(x[0]); }, {{2, 3}}},
      {"sum_all_large", [](const X& x) { return sum(x[0]); }, {{300, 500}}},
      {"sum_axis0", [](const X& x) { return sum(x[0], {0}); }, {{2, 3, 2}}},
      {"sum_axis0_large", [](const X& x) { return sum(x[0], {0}); }, {{700, 40}}},
      {"sum_axes_keepdim",
       [](const X& x) {
         return sum(x[0], {0, 2}, true);
       },
       {{2, 3, 2}}},
      {"sum_transposed", [](const X& x) { return sum(transpose(x[0], 0, 1), {1}); }, {{3, 4}}},
      {"mean_axis", [](const X& x) { return mean(x[0], {-1}); }, {{2, 3, 4}}},
      {"max_axis1", [](const X& x) { return max(x[0], 1).first; }, {{2, 4, 3}}},
      {"max_keepdim", [](const X& x) { return max(x[0], -1, true).first; }, {{3, 5}}},
      {"max_long_rows", [](const X& x) { return max(x[0], -1).first; }, {{4, 1000}}},
      {"max_indices",
       [](const X& x) { return cast(max(x[0], 0).second, DType::F32); },
       {{50, 7}},
       -1,
       1,
       kExact,
       false},
      {"sum_to",
       [](const X& x) {
         return sum_to(x[0], {3, 1});
       },
       {{2, 3, 4}}},
      // softmax family and loss
      {"softmax_last", [](const X& x) { return softmax(x[0], -1); }, {{3, 5}}, -3.0, 3.0, T},
      {"softmax_axis0", [](const X& x) { return softmax(x[0], 0); }, {{4, 3}}, -3.0, 3.0, T},
      {"softmax_long_rows",
       [](const X& x) { return softmax(x[0], -1); },
       {{3, 1000}},
       -5.0,
       5.0,
       T},
      {"log_softmax", [](const X& x) { return log_softmax(x[0], -1); }, {{2, 3, 4}}, -3.0, 3.0, T},
      {"log_softmax_transposed",
       [](const X& x) { return log_softmax(transpose(x[0], 0, 1), -1); },
       {{4, 3}},
       -3.0,
       3.0,
       T},
      {"logsumexp", [](const X& x) { return logsumexp(x[0], 1); }, {{3, 4}}, -3.0, 3.0, T},
      {"cross_entropy",
       [](const X& x) {
         return cross_entropy(x[0], ids({1, 0, 3, -100}, {4}, dev(x)));
       },
       {{4, 5}},
       -3.0,
       3.0,
       T},
      {"cross_entropy_3d",
       [](const X& x) {
         return cross_entropy(x[0], ids({0, 2, 1, 1, 0, 2}, {2, 3}, dev(x)));
       },
       {{2, 3, 3}},
       -3.0,
       3.0,
       T},
      {"cross_entropy_large",
       [](const X& x) { return cross_entropy(x[0], random_ids({64}, 300, 5, dev(x), 7)); },
       {{64, 300}},
       -5.0,
       5.0,
       T},
      {"cross_entropy_all_ignored",
       [](const X& x) {
         return cross_entropy(x[0], ids({-100, -100}, {2}, dev(x)));
       },
       {{2, 3}}},
      {"causal_softmax_square",
       [](const X& x) { return causal_softmax(x[0], 0.5); },
       {{2, 4, 4}},
       -3.0,
       3.0,
       T},
      {"causal_softmax_offset_keys",  // Tk > T: the rows see 3 + i keys
       [](const X& x) { return causal_softmax(transpose(x[0], 0, 1), 0.7); },
       {{5, 2, 7}},
       -3.0,
       3.0,
       T},
      {"rotary_heads_view",
       [](const X& x) {
         Generator g(5);  // the same constant tables on both backends
         Tensor c = normal({5, 4}, 0, 1, g, DType::F32, dev(x)),
                s = normal({5, 4}, 0, 1, g, DType::F32, dev(x));
         return rotary(transpose(x[0], 1, 2), c, s);
       },
       {{2, 5, 3, 8}}},
      {"causal_softmax_long_rows",
       [](const X& x) { return causal_softmax(x[0], 0.125); },
       {{2, 3, 400}},
       -5.0,
       5.0,
       T},
      {"causal_attention_cached_strided_v",  // Tk 75 > T 70, v the transpose of [B, Tk, H, hd]
       [](const X& x) { return causal_attention(x[0], x[1], transpose(x[2], 1, 2), 0.25); },
       {{2, 3, 70, 8}, {2, 3, 75, 8}, {2, 75, 3, 8}},
       -2.0,
       2.0,
       T},
      // norms
      {"rms_norm", [](const X& x) { return rms_norm(x[0], x[1], 1e-6); }, {{3, 5}, {5}}},
      {"rms_norm_3d_transposed",
       [](const X& x) { return rms_norm(transpose(x[0], 0, 1), x[1]); },
       {{4, 2, 3}, {3}}},
      {"layer_norm",
       [](const X& x) { return layer_norm(x[0], x[1], x[2], 1e-5); },
       {{3, 5}, {5}, {5}}},
      {"layer_norm_large",
       [](const X& x) { return layer_norm(x[0], x[1], x[2], 1e-5); },
       {{200, 300}, {300}, {300}}},
      {"batch_norm_train_axis1",
       [](const X& x) {
         Tensor rm = zeros({3}, DType::F32, dev(x)), rv = ones({3}, DType::F32, dev(x));
         return batch_norm(x[0], 1, rm, rv, true);
       },
       {{4, 3, 2}}},
      {"batch_norm_eval",
       [](const X& x) {
         Tensor rm = full({2}, 0.3, DType::F32, dev(x)), rv = full({2}, 1.7, DType::F32, dev(x));
         return batch_norm(x[0], -1, rm, rv, false);
       },
       {{5, 2}}},
      // indexing
      {"embedding",
       [](const X& x) {
         return embedding(x[0], ids({3, 1, 3, 0}, {2, 2}, dev(x)));
       },
       {{4, 3}}},
      {"embedding_large",  // 600 ids: index_add scans more than one block-width of indices
       [](const X& x) {
         return embedding(x[0], random_ids({20, 30}, 50, 9, dev(x)));
       },
       {{50, 300}}},
      {"index_select_axis1",
       [](const X& x) {
         return index_select(x[0], 1, ids({2, 0, 2}, {3}, dev(x)));
       },
       {{2, 3, 2}}},
      {"gather_axis1",
       [](const X& x) {
         return gather(x[0], 1, ids({0, 2, 1, 1, 0, 0}, {2, 3}, dev(x)));
       },
       {{2, 4}}},
      {"gather_transposed_index",
       [](const X& x) {
         Tensor ix = transpose(ids({0, 1, 3, 3, 2, 0}, {3, 2}, dev(x)), 0, 1);
         return gather(x[0], 1, ix);
       },
       {{2, 4}}},
      {"scatter_add",
       [](const X& x) {
         return scatter_add(x[0], 1, ids({0, 2, 1, 1, 0, 0}, {2, 3}, dev(x)), x[1]);
       },
       {{2, 4}, {2, 3}}},
      {"scatter_add_axis0_transposed_src",
       [](const X& x) {
         return scatter_add(x[0], 0, ids({2, 0, 2, 1, 2, 2}, {2, 3}, dev(x)),
                            transpose(x[1], 0, 1));
       },
       {{3, 3}, {3, 2}}},
      {"topk", [](const X& x) { return topk(x[0], 2).first; }, {{3, 5}}},
      {"topk_long_rows", [](const X& x) { return topk(x[0], 8).first; }, {{5, 100}}},
      {"topk_indices",
       [](const X& x) { return cast(topk(x[0], 8).second, DType::F32); },
       {{6, 77}},
       -1,
       1,
       kExact,
       false},
      // shape ops
      {"reshape",
       [](const X& x) {
         return reshape(x[0], {3, -1});
       },
       {{2, 3, 2}}},
      {"reshape_noncontiguous",
       [](const X& x) { return reshape(transpose(x[0], 0, 1), {6}); },
       {{2, 3}}},
      {"permute",
       [](const X& x) {
         return contiguous(permute(x[0], {2, 0, 1}));
       },
       {{2, 3, 4}}},
      {"slice", [](const X& x) { return slice(x[0], 0, 1, 3); }, {{4, 2}}},
      {"expand",
       [](const X& x) {
         return contiguous(expand(x[0], {2, 3, 4}));
       },
       {{3, 1}}},
      {"unsqueeze_squeeze", [](const X& x) { return squeeze(unsqueeze(x[0], 1), 1); }, {{2, 3}}},
      {"concat",
       [](const X& x) {
         return concat({x[0], transpose(x[1], 0, 1)}, 1);
       },
       {{2, 1}, {3, 2}}},
      {"split",
       [](const X& x) {
         auto p = split(x[0], {1, 2}, 1);
         return add(mul(p[0], 2.0), sum(p[1], {1}, true));
       },
       {{3, 3}}},
      // empty tensors: no kernel may be launched with an empty grid
      {"add_empty", [](const X& x) { return add(x[0], x[1]); }, {{0, 3}, {3}}},
      {"sum_over_empty_axis", [](const X& x) { return sum(x[0], {1}); }, {{3, 0}}},
      {"matmul_k0", [](const X& x) { return matmul(x[0], x[1]); }, {{2, 0}, {0, 3}}},
      {"softmax_no_rows", [](const X& x) { return softmax(x[0], -1); }, {{0, 4}}},
      {"cast_int_roundtrip",
       [](const X& x) { return cast(cast(mul(x[0], 10.0), DType::I32), DType::F32); },
       {{4, 4}},
       -1,
       1,
       kExact,
       false},
  };
}

struct Outcome {
  Tensor out;                 // on the CPU
  std::vector<Tensor> grads;  // on the CPU; zeros where no gradient reached the input
};

// f on device d: the inputs become leaves there, L = Σ f(x) ⊙ w with a fixed random w.
Outcome evaluate(const Case& c, const std::vector<Tensor>& inputs, Device d) {
  std::vector<Tensor> leaves;
  for (const Tensor& t : inputs) leaves.push_back(t.to(d).detach().requires_grad_());
  Tensor out = c.f(leaves);
  EXPECT_EQ(out.device(), d) << c.name;
  Outcome r{out.detach().to(kCpu), {}};
  if (!c.grad) return r;
  Generator g(7);
  Tensor w = randn(out.shape(), g).to(d);
  sum(mul(out, w)).backward();
  for (const Tensor& l : leaves)
    r.grads.push_back(l.grad().defined() ? l.grad().to(kCpu) : zeros(l.shape()));
  return r;
}

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.name;
}

class CudaParity : public ::testing::TestWithParam<Case> {};

TEST_P(CudaParity, ForwardAndBackwardMatchCpu) {
  SKIP_WITHOUT_CUDA();
  const Case& c = GetParam();
  Generator g(42);
  std::vector<Tensor> inputs;
  for (const Shape& s : c.shapes) inputs.push_back(uniform(s, c.lo, c.hi, g));
  Outcome cpu = evaluate(c, inputs, kCpu), gpu = evaluate(c, inputs, kCuda);
  ASSERT_EQ(gpu.out.shape(), cpu.out.shape()) << c.name;
  EXPECT_LE(nmse(gpu.out, cpu.out), c.threshold) << c.name << ": forward";
  ASSERT_EQ(gpu.grads.size(), cpu.grads.size());
  for (size_t i = 0; i < cpu.grads.size(); ++i)
    EXPECT_LE(nmse(gpu.grads[i], cpu.grads[i]), c.threshold)
        << c.name << ": gradient of input " << i;
}

INSTANTIATE_TEST_SUITE_P(CudaOps, CudaParity, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& i) { return i.param.name; });

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
