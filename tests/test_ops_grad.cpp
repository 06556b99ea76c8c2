// Every op of the core, gradient-checked in double precision against central finite differences
// (tests/gradcheck.h), from one table of cases in the style of ggml's test-backend-ops. Cases cover
// broadcasting, non-contiguous views (transposes, slices, expands) and size-1 axes.
#include <gtest/gtest.h>

#include "core/memory.h"
#include "gradcheck.h"

using namespace monet;
using monet::testing::expect_gradcheck;
using X = std::vector<Tensor>;

namespace {

struct Case {
  std::string name;
  monet::testing::Fn f;
  std::vector<Shape> shapes;
  double lo = -1.0, hi = 1.0;  // input range: kept away from kinks and poles where the op has them
};

// Integer index tensors used by the index cases.
Tensor ids(std::vector<int32_t> v, Shape s) { return from_vector(v, s); }

// A constant [T, half] table (cos or sin of RoPE) in double: entries sin(phase + 0.37·k).
Tensor rope_table(int64_t T, int64_t half, double phase) {
  std::vector<double> v(static_cast<size_t>(T * half));
  for (size_t k = 0; k < v.size(); ++k) v[k] = std::sin(phase + 0.37 * static_cast<double>(k));
  return from_vector(v, {T, half});
}

std::vector<Case> cases() {
  const Tensor idx3 = ids({2, 0, 2}, {3});
  const Tensor gidx = ids({0, 2, 1, 1, 0, 0}, {2, 3});
  const Tensor tgt = ids({1, 0, 3, -100}, {4});
  return {
      // elementwise, binary with broadcasting
      {"add_same", [](const X& x) { return add(x[0], x[1]); }, {{2, 3}, {2, 3}}},
      {"add_broadcast", [](const X& x) { return add(x[0], x[1]); }, {{3, 1, 4}, {2, 1}}},
      {"sub_broadcast", [](const X& x) { return sub(x[0], x[1]); }, {{4}, {3, 1}}},
      {"mul_broadcast", [](const X& x) { return mul(x[0], x[1]); }, {{2, 1, 3}, {1, 4, 1}}},
      {"mul_self", [](const X& x) { return mul(x[0], x[0]); }, {{5}}},
      {"div_broadcast", [](const X& x) { return div(x[0], x[1]); }, {{2, 3}, {3}}, 0.5, 2.0},
      {"add_transposed", [](const X& x) { return add(transpose(x[0], 0, 1), x[1]); }, {{3, 2}, {2, 3}}},
      {"mul_expanded", [](const X& x) { return mul(expand(x[0], {3, 4}), x[1]); }, {{1, 4}, {3, 4}}},
      // scalar
      {"add_scalar", [](const X& x) { return add(x[0], 2.5); }, {{2, 3}}},
      {"mul_scalar", [](const X& x) { return mul(x[0], -1.5); }, {{2, 3}}},
      // unary
      {"neg", [](const X& x) { return neg(x[0]); }, {{3, 2}}},
      {"exp", [](const X& x) { return exp(transpose(x[0], 0, 1)); }, {{3, 2}}},
      {"log", [](const X& x) { return log(x[0]); }, {{2, 3}}, 0.3, 2.0},
      {"sqrt", [](const X& x) { return sqrt(x[0]); }, {{2, 3}}, 0.3, 2.0},
      {"rsqrt", [](const X& x) { return rsqrt(x[0]); }, {{2, 3}}, 0.3, 2.0},
      {"pow_2_5", [](const X& x) { return pow(x[0], 2.5); }, {{2, 3}}, 0.3, 2.0},
      {"pow_3_signed", [](const X& x) { return pow(x[0], 3.0); }, {{2, 3}}, -2.0, -0.2},
      {"relu_pos", [](const X& x) { return relu(x[0]); }, {{2, 3}}, 0.1, 1.0},
      {"relu_neg", [](const X& x) { return relu(x[0]); }, {{2, 3}}, -1.0, -0.1},
      {"relu2", [](const X& x) { return relu2(slice(x[0], 1, 1, 3)); }, {{2, 4}}, 0.1, 1.0},
      {"gelu", [](const X& x) { return gelu(x[0]); }, {{2, 5}}, -3.0, 3.0},
      {"silu", [](const X& x) { return silu(x[0]); }, {{2, 5}}, -3.0, 3.0},
      {"sigmoid", [](const X& x) { return sigmoid(x[0]); }, {{2, 5}}, -4.0, 4.0},
      {"softplus", [](const X& x) { return softplus(x[0]); }, {{2, 5}}, -4.0, 4.0},
      // matmul: all transpose cases, batched with broadcast batch axes, a shared 2-D weight
      {"matmul_nn", [](const X& x) { return matmul(x[0], x[1]); }, {{3, 4}, {4, 2}}},
      {"matmul_tn", [](const X& x) { return matmul(transpose(x[0], 0, 1), x[1]); }, {{4, 3}, {4, 2}}},
      {"matmul_nt", [](const X& x) { return matmul(x[0], transpose(x[1], 0, 1)); }, {{3, 4}, {2, 4}}},
      {"matmul_tt", [](const X& x) { return matmul(transpose(x[0], 0, 1), transpose(x[1], 0, 1)); },
       {{4, 3}, {2, 4}}},
      {"matmul_batched_broadcast", [](const X& x) { return matmul(x[0], x[1]); },
       {{2, 1, 3, 4}, {3, 4, 2}}},
      {"matmul_shared_weight", [](const X& x) { return matmul(x[0], x[1]); }, {{2, 3, 4}, {4, 5}}},
      {"matmul_sliced", [](const X& x) { return matmul(slice(x[0], 1, 1, 4), x[1]); },
       {{3, 5}, {3, 2}}},
      {"matmul_row_vector", [](const X& x) { return matmul(x[0], x[1]); }, {{1, 4}, {4, 1}}},
      // reductions
      {"sum_all", [](const X& x) { return sum(x[0]); }, {{2, 3}}},
      {"sum_axis0", [](const X& x) { return sum(x[0], {0}); }, {{2, 3, 2}}},
      {"sum_axes_keepdim", [](const X& x) { return sum(x[0], {0, 2}, true); }, {{2, 3, 2}}},
      {"sum_transposed", [](const X& x) { return sum(transpose(x[0], 0, 1), {1}); }, {{3, 4}}},
      {"mean_axis", [](const X& x) { return mean(x[0], {-1}); }, {{2, 3, 4}}},
      {"max_axis1", [](const X& x) { return max(x[0], 1).first; }, {{2, 4, 3}}},
      {"max_keepdim", [](const X& x) { return max(x[0], -1, true).first; }, {{3, 5}}},
      {"sum_to", [](const X& x) { return sum_to(x[0], {3, 1}); }, {{2, 3, 4}}},
      // softmax family and loss
      {"softmax_last", [](const X& x) { return softmax(x[0], -1); }, {{3, 5}}, -3.0, 3.0},
      {"softmax_axis0", [](const X& x) { return softmax(x[0], 0); }, {{4, 3}}, -3.0, 3.0},
      {"log_softmax", [](const X& x) { return log_softmax(x[0], -1); }, {{2, 3, 4}}, -3.0, 3.0},
      {"log_softmax_transposed", [](const X& x) { return log_softmax(transpose(x[0], 0, 1), -1); },
       {{4, 3}}, -3.0, 3.0},
      {"logsumexp", [](const X& x) { return logsumexp(x[0], 1); }, {{3, 4}}, -3.0, 3.0},
      {"masked_softmax",  // rows keep 1, 2, 3 and all 4 entries
       [](const X& x) {
         return masked_softmax(x[0], from_vector<double>({0, 1, 0, 0, 1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1, 1}, {4, 4}));
       },
       {{4, 4}}, -3.0, 3.0},
      {"cross_entropy", [tgt](const X& x) { return cross_entropy(x[0], tgt); }, {{4, 5}}, -3.0, 3.0},
      {"cross_entropy_3d", [](const X& x) { return cross_entropy(x[0], from_vector<int32_t>({0, 2, 1, 1, 0, 2}, {2, 3})); },
       {{2, 3, 3}}, -3.0, 3.0},
      {"causal_softmax", [](const X& x) { return causal_softmax(x[0], 0.7); }, {{2, 3, 3}}, -2.0, 2.0},
      {"causal_softmax_cached", [](const X& x) { return causal_softmax(transpose(x[0], 0, 1), 1.3); },
       {{5, 2}}, -2.0, 2.0},
      // causal_attention: q, k, v; T = 70 crosses the query blocks (of 32 or 64) with a partial last
      {"causal_attention_square",
       [](const X& x) { return causal_attention(x[0], x[1], x[2], 0.6); },
       {{2, 2, 5, 3}, {2, 2, 5, 3}, {2, 2, 5, 3}}},
      {"causal_attention_blocks",
       [](const X& x) { return causal_attention(x[0], x[1], x[2], 0.8); },
       {{1, 70, 2}, {1, 70, 2}, {1, 70, 2}}},
      {"causal_attention_cached",  // Tk = 7 > T = 4: the queries are the last 4 of 7 positions
       [](const X& x) { return causal_attention(slice(x[0], 1, 3, 7), x[1], x[2], 0.9); },
       {{2, 7, 3}, {2, 7, 3}, {2, 7, 3}}},
      {"causal_attention_strided_v",  // v the transpose of [B, T, H, hd], as attention passes it
       [](const X& x) { return causal_attention(x[0], x[1], transpose(x[2], 1, 2), 0.7); },
       {{1, 2, 6, 3}, {1, 2, 6, 3}, {1, 6, 2, 3}}},
      {"causal_attention_blocks_cached_strided",
       [](const X& x) {
         return causal_attention(x[0], transpose(x[1], 0, 1), transpose(x[2], 1, 2), 0.7);
       },
       {{1, 2, 70, 2}, {2, 1, 75, 2}, {1, 75, 2, 2}}},
      {"rotary", [](const X& x) { return rotary(x[0], rope_table(3, 2, 1.0), rope_table(3, 2, 2.0)); },
       {{2, 3, 4}}},
      {"rotary_heads_view",  // [B, T, H, hd] seen as [B, H, T, hd], as attention does
       [](const X& x) {
         return rotary(transpose(x[0], 1, 2), rope_table(3, 3, 0.5), rope_table(3, 3, 1.5));
       },
       {{2, 3, 2, 6}}},
      // norms
      {"rms_norm", [](const X& x) { return rms_norm(x[0], x[1], 1e-6); }, {{3, 5}, {5}}},
      {"rms_norm_3d_transposed", [](const X& x) { return rms_norm(transpose(x[0], 0, 1), x[1]); },
       {{4, 2, 3}, {3}}},
      {"layer_norm", [](const X& x) { return layer_norm(x[0], x[1], x[2], 1e-5); }, {{3, 5}, {5}, {5}}},
      {"batch_norm_train_axis1",
       [](const X& x) {
         Tensor rm = zeros({3}, DType::F64), rv = ones({3}, DType::F64);
         return batch_norm(x[0], 1, rm, rv, true);
       },
       {{4, 3, 2}}},
      {"batch_norm_eval",
       [](const X& x) {
         Tensor rm = full({2}, 0.3, DType::F64), rv = full({2}, 1.7, DType::F64);
         return batch_norm(x[0], -1, rm, rv, false);
       },
       {{5, 2}}},
      // indexing
      {"embedding", [](const X& x) { return embedding(x[0], ids({3, 1, 3, 0}, {2, 2})); }, {{4, 3}}},
      {"index_select_axis1", [idx3](const X& x) { return index_select(x[0], 1, idx3); }, {{2, 3, 2}}},
      {"gather_axis1", [gidx](const X& x) { return gather(x[0], 1, gidx); }, {{2, 4}}},
      {"scatter_add", [gidx](const X& x) { return scatter_add(x[0], 1, gidx, x[1]); }, {{2, 4}, {2, 3}}},
      {"topk", [](const X& x) { return topk(x[0], 2).first; }, {{3, 5}}},
      {"where", [](const X& x) { return where(greater(x[0], zeros({}, DType::F64)), x[1], x[2]); },
       {{2, 3}, {2, 3}, {3}}},
      {"masked_fill", [](const X& x) { return masked_fill(x[0], greater(x[0], zeros({}, DType::F64)), -5.0); },
       {{3, 4}}},
      // shape ops
      {"reshape", [](const X& x) { return reshape(x[0], {3, -1}); }, {{2, 3, 2}}},
      {"reshape_noncontiguous", [](const X& x) { return reshape(transpose(x[0], 0, 1), {6}); }, {{2, 3}}},
      {"permute", [](const X& x) { return permute(x[0], {2, 0, 1}); }, {{2, 3, 4}}},
      {"slice", [](const X& x) { return slice(x[0], 0, 1, 3); }, {{4, 2}}},
      {"expand", [](const X& x) { return expand(x[0], {2, 3, 4}); }, {{3, 1}}},
      {"unsqueeze_squeeze", [](const X& x) { return squeeze(unsqueeze(x[0], 1), 1); }, {{2, 3}}},
      {"contiguous", [](const X& x) { return contiguous(transpose(x[0], 0, 1)); }, {{2, 3}}},
      {"concat", [](const X& x) { return concat({x[0], x[1]}, 1); }, {{2, 1}, {2, 3}}},
      {"split", [](const X& x) {
         auto p = split(x[0], {1, 2}, 1);
         return add(mul(p[0], 2.0), sum(p[1], {1}, true));
       }, {{3, 3}}},
      {"cast_roundtrip", [](const X& x) { return cast(cast(x[0], DType::F64), DType::F64); }, {{3}}},
  };
}

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class OpGrad : public ::testing::TestWithParam<Case> {};

TEST_P(OpGrad, MatchesFiniteDifferences) {
  const Case& c = GetParam();
  Generator g(42);
  std::vector<Tensor> in;
  for (const Shape& s : c.shapes) in.push_back(monet::testing::rnd(s, g, c.lo, c.hi));
  expect_gradcheck(c.name, c.f, in);
}

// After forward, backward and dropping every tensor, the bytes held return to where they were: a
// backward closure that captured its own output (a reference cycle) would keep the graph alive.
TEST_P(OpGrad, FreesItsGraphAfterBackward) {
  const Case& c = GetParam();
  Generator g(43);
  const int64_t before = memory::stats(DeviceType::CPU).current;
  {
    std::vector<Tensor> in;
    for (const Shape& s : c.shapes) in.push_back(monet::testing::rnd(s, g, c.lo, c.hi).requires_grad_());
    sum(c.f(in)).backward();
  }
  EXPECT_EQ(memory::stats(DeviceType::CPU).current, before) << c.name << " leaks its graph";
}

INSTANTIATE_TEST_SUITE_P(Core, OpGrad, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& i) { return i.param.name; });

}  // namespace
