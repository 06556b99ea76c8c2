// The op case table of tests/op_cases.h. The `_large` cases repeat an op at the parity's larger
// sizes; those beyond ~5,000 input elements (or ~1e6 flops a forward) run in the parity only.
#include "op_cases.h"

#include <gtest/gtest.h>

#include <cmath>
#include <utility>

#include "core/ops.h"
#include "core/random.h"

namespace monet::testing {
namespace {

using X = std::vector<Tensor>;

// The reasons a case runs in one suite only.
const char* const kLarge = "large shapes exercise the CUDA grid; finite differences would be slow";
const char* const kNoGrad = "comparison, index or integer output: there is no gradient to check";

Device dev(const X& x) {
  return x[0].device();
}
// A constant in the dtype and on the device of the inputs (cast first, so no F64 reaches CUDA).
Tensor like(const Tensor& t, const X& x) {
  return t.to(x[0].dtype()).to(dev(x));
}
Tensor zero(const X& x) {
  return zeros({}, x[0].dtype(), dev(x));
}
Tensor ids(const std::vector<int32_t>& v, const Shape& s, const X& x) {
  return from_vector(v, s).to(dev(x));
}
// A constant [T, half] table (cos or sin of RoPE): entries sin(phase + 0.37·k).
Tensor rope_table(int64_t T, int64_t half, double phase, const X& x) {
  std::vector<double> v(static_cast<size_t>(T * half));
  for (size_t k = 0; k < v.size(); ++k) v[k] = std::sin(phase + 0.37 * static_cast<double>(k));
  return like(from_vector(v, {T, half}), x);
}

// A case in both suites: inputs drawn from [lo, hi], the parity held to nmse.
OpCase op(std::string name, std::vector<Shape> shapes, double lo, double hi, double nmse, Fn f) {
  OpCase c;
  c.name = std::move(name);
  c.f = std::move(f);
  c.shapes = std::move(shapes);
  c.lo = lo;
  c.hi = hi;
  c.parity_nmse = nmse;
  return c;
}
OpCase op(std::string name, std::vector<Shape> shapes, double lo, double hi, Fn f) {
  return op(std::move(name), std::move(shapes), lo, hi, kDefault, std::move(f));
}
OpCase op(std::string name, std::vector<Shape> shapes, Fn f) {
  return op(std::move(name), std::move(shapes), -1.0, 1.0, kDefault, std::move(f));
}
// Finite differences with a step and tolerances of the case's own.
OpCase with_gradcheck(OpCase c, double h, double atol) {
  c.gradcheck.h = h;
  c.gradcheck.atol = atol;
  return c;
}
// Parity only: shapes that span many CUDA blocks make finite differences slow.
OpCase large_shapes(OpCase c) {
  c.suites = kParity;
  c.why = kLarge;
  return c;
}
// Parity only, forward only, and exact: the output has no gradient.
OpCase forward_only(OpCase c) {
  c.parity_nmse = kExact;
  c.differentiable = false;
  c.suites = kParity;
  c.why = kNoGrad;
  return c;
}

std::vector<OpCase> build() {
  const double T = kTranscendental;
  return {
      // elementwise, binary with broadcasting
      op("add_same", {{2, 3}, {2, 3}}, [](const X& x) { return add(x[0], x[1]); }),
      op("add_same_large", {{64, 33}, {64, 33}}, [](const X& x) { return add(x[0], x[1]); }),
      op("add_broadcast", {{3, 1, 4}, {2, 1}}, [](const X& x) { return add(x[0], x[1]); }),
      large_shapes(op("add_broadcast_large", {{17, 300, 3}, {300, 1}},
                      [](const X& x) { return add(x[0], x[1]); })),
      op("sub_broadcast", {{4}, {3, 1}}, [](const X& x) { return sub(x[0], x[1]); }),
      op("sub_sliced_permuted", {{5, 3, 6}, {6, 3, 1}},
         [](const X& x) {
           return sub(slice(permute(x[0], {2, 0, 1}), 1, 1, 4), x[1]);
         }),
      op("mul_broadcast", {{2, 1, 3}, {1, 4, 1}}, [](const X& x) { return mul(x[0], x[1]); }),
      op("mul_self", {{5}}, [](const X& x) { return mul(x[0], x[0]); }),
      op("mul_expanded", {{1, 4}, {3, 4}},
         [](const X& x) {
           return mul(expand(x[0], {3, 4}), x[1]);
         }),
      op("div_broadcast", {{2, 3}, {3}}, 0.5, 2.0, [](const X& x) { return div(x[0], x[1]); }),
      op("add_transposed", {{3, 2}, {2, 3}},
         [](const X& x) { return add(transpose(x[0], 0, 1), x[1]); }),
      // scalar and unary
      op("add_scalar", {{2, 3}}, [](const X& x) { return add(x[0], 2.5); }),
      op("mul_scalar", {{2, 3}}, [](const X& x) { return mul(x[0], -1.5); }),
      op("neg", {{3, 2}}, [](const X& x) { return neg(x[0]); }),
      op("exp_transposed", {{3, 2}}, -1, 1, T,
         [](const X& x) { return exp(transpose(x[0], 0, 1)); }),
      op("log", {{2, 3}}, 0.3, 2.0, T, [](const X& x) { return log(x[0]); }),
      op("sqrt", {{2, 3}}, 0.3, 2.0, [](const X& x) { return sqrt(x[0]); }),
      op("rsqrt", {{2, 3}}, 0.3, 2.0, [](const X& x) { return rsqrt(x[0]); }),
      op("pow_2_5", {{2, 3}}, 0.3, 2.0, T, [](const X& x) { return pow(x[0], 2.5); }),
      op("pow_3_signed", {{2, 3}}, -2.0, -0.2, T, [](const X& x) { return pow(x[0], 3.0); }),
      op("relu_pos", {{2, 3}}, 0.1, 1.0, [](const X& x) { return relu(x[0]); }),
      op("relu_neg", {{2, 3}}, -1.0, -0.1, [](const X& x) { return relu(x[0]); }),
      // Both signs: the nearest of the fixed F64 draws is 6e-4 from the kink, far beyond h = 1e-6.
      op("relu_mixed", {{1000}}, [](const X& x) { return relu(x[0]); }),
      op("relu2", {{2, 4}}, 0.1, 1.0, [](const X& x) { return relu2(slice(x[0], 1, 1, 3)); }),
      op("relu2_sliced", {{2, 4}}, [](const X& x) { return relu2(slice(x[0], 1, 1, 3)); }),
      op("gelu", {{2, 5}}, -3.0, 3.0, T, [](const X& x) { return gelu(x[0]); }),
      op("silu", {{2, 5}}, -3.0, 3.0, T, [](const X& x) { return silu(x[0]); }),
      op("sigmoid", {{2, 5}}, -4.0, 4.0, T, [](const X& x) { return sigmoid(x[0]); }),
      op("softplus", {{2, 5}}, -4.0, 4.0, T, [](const X& x) { return softplus(x[0]); }),
      // comparisons and selection
      forward_only(op("greater", {{4, 5}, {5}}, [](const X& x) { return greater(x[0], x[1]); })),
      forward_only(op("greater_equal_int", {{4, 5}, {4, 1}},
                      [](const X& x) {
                        Tensor a = cast(mul(x[0], 4.0), DType::I32), b = cast(x[1], DType::I32);
                        return cast(greater_equal(a, b), x[0].dtype());
                      })),
      forward_only(
          op("equal", {{3, 3}}, [](const X& x) { return equal(x[0], transpose(x[0], 0, 1)); })),
      op("where", {{2, 3}, {2, 3}, {3}},
         [](const X& x) { return where(greater(x[0], zero(x)), x[1], x[2]); }),
      op("where_int_cond", {{4, 1}, {4, 6}, {6}},
         [](const X& x) { return where(cast(greater(x[0], zero(x)), DType::I32), x[1], x[2]); }),
      op("masked_fill", {{3, 4}},
         [](const X& x) { return masked_fill(x[0], greater(x[0], zero(x)), -5.0); }),
      // matmul: every transpose case, batched with broadcast batch axes, a shared 2-D weight
      op("matmul_nn", {{3, 4}, {4, 2}}, [](const X& x) { return matmul(x[0], x[1]); }),
      op("matmul_tn", {{4, 3}, {4, 2}},
         [](const X& x) { return matmul(transpose(x[0], 0, 1), x[1]); }),
      op("matmul_nt", {{3, 4}, {2, 4}},
         [](const X& x) { return matmul(x[0], transpose(x[1], 0, 1)); }),
      op("matmul_tt", {{4, 3}, {2, 4}},
         [](const X& x) { return matmul(transpose(x[0], 0, 1), transpose(x[1], 0, 1)); }),
      op("matmul_batched_broadcast", {{2, 1, 3, 4}, {3, 4, 2}},
         [](const X& x) { return matmul(x[0], x[1]); }),
      op("matmul_batched_transposed", {{3, 20, 30}, {3, 20, 10}},
         [](const X& x) { return matmul(transpose(x[0], -1, -2), x[1]); }),
      op("matmul_shared_weight", {{2, 3, 4}, {4, 5}},
         [](const X& x) { return matmul(x[0], x[1]); }),
      large_shapes(op("matmul_shared_weight_large", {{2, 3, 65, 70}, {70, 33}},
                      [](const X& x) { return matmul(x[0], x[1]); })),
      op("matmul_sliced", {{3, 5}, {3, 2}},
         [](const X& x) { return matmul(slice(x[0], 1, 1, 4), x[1]); }),
      op("matmul_row_vector", {{1, 4}, {4, 1}}, [](const X& x) { return matmul(x[0], x[1]); }),
      // reductions
      op("sum_all", {{2, 3}}, [](const X& x) { return sum(x[0]); }),
      large_shapes(op("sum_all_large", {{300, 500}}, [](const X& x) { return sum(x[0]); })),
      op("sum_axis0", {{2, 3, 2}}, [](const X& x) { return sum(x[0], {0}); }),
      large_shapes(op("sum_axis0_large", {{700, 40}}, [](const X& x) { return sum(x[0], {0}); })),
      op("sum_axes_keepdim", {{2, 3, 2}},
         [](const X& x) {
           return sum(x[0], {0, 2}, true);
         }),
      op("sum_transposed", {{3, 4}}, [](const X& x) { return sum(transpose(x[0], 0, 1), {1}); }),
      op("mean_axis", {{2, 3, 4}}, [](const X& x) { return mean(x[0], {-1}); }),
      op("max_axis1", {{2, 4, 3}}, [](const X& x) { return max(x[0], 1).first; }),
      op("max_keepdim", {{3, 5}}, [](const X& x) { return max(x[0], -1, true).first; }),
      op("max_long_rows", {{4, 1000}}, [](const X& x) { return max(x[0], -1).first; }),
      forward_only(op("max_indices", {{50, 7}},
                      [](const X& x) { return cast(max(x[0], 0).second, x[0].dtype()); })),
      op("sum_to", {{2, 3, 4}},
         [](const X& x) {
           return sum_to(x[0], {3, 1});
         }),
      // softmax family and loss
      op("softmax_last", {{3, 5}}, -3.0, 3.0, T, [](const X& x) { return softmax(x[0], -1); }),
      op("softmax_axis0", {{4, 3}}, -3.0, 3.0, T, [](const X& x) { return softmax(x[0], 0); }),
      op("softmax_long_rows", {{3, 1000}}, -5.0, 5.0, T,
         [](const X& x) { return softmax(x[0], -1); }),
      op("log_softmax", {{2, 3, 4}}, -3.0, 3.0, T,
         [](const X& x) { return log_softmax(x[0], -1); }),
      op("log_softmax_transposed", {{4, 3}}, -3.0, 3.0, T,
         [](const X& x) { return log_softmax(transpose(x[0], 0, 1), -1); }),
      op("logsumexp", {{3, 4}}, -3.0, 3.0, T, [](const X& x) { return logsumexp(x[0], 1); }),
      // rows keep 1, 2, 3 and all 4 entries
      op("masked_softmax", {{4, 4}}, -3.0, 3.0, T,
         [](const X& x) {
           const std::vector<double> keep = {0, 1, 0, 0, 1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1, 1};
           return masked_softmax(x[0], like(from_vector(keep, {4, 4}), x));
         }),
      op("cross_entropy", {{4, 5}}, -3.0, 3.0, T,
         [](const X& x) {
           return cross_entropy(x[0], ids({1, 0, 3, -100}, {4}, x));
         }),
      op("cross_entropy_3d", {{2, 3, 3}}, -3.0, 3.0, T,
         [](const X& x) {
           return cross_entropy(x[0], ids({0, 2, 1, 1, 0, 2}, {2, 3}, x));
         }),
      large_shapes(
          op("cross_entropy_large", {{64, 300}}, -5.0, 5.0, T,
             [](const X& x) { return cross_entropy(x[0], random_ids({64}, 300, 5, dev(x), 7)); })),
      op("cross_entropy_all_ignored", {{2, 3}},
         [](const X& x) {
           return cross_entropy(x[0], ids({-100, -100}, {2}, x));
         }),
      // attention: causal softmax, fused causal attention (T = 70 crosses the CPU's query blocks
      // of 32 or 64 with a partial last one), rotary embedding
      op("causal_softmax", {{2, 3, 3}}, -2.0, 2.0, T,
         [](const X& x) { return causal_softmax(x[0], 0.7); }),
      op("causal_softmax_cached", {{5, 2}}, -2.0, 2.0, T,
         [](const X& x) { return causal_softmax(transpose(x[0], 0, 1), 1.3); }),
      op("causal_softmax_square", {{2, 4, 4}}, -3.0, 3.0, T,
         [](const X& x) { return causal_softmax(x[0], 0.5); }),
      // Tk > T: the rows see 3 + i keys
      op("causal_softmax_offset_keys", {{5, 2, 7}}, -3.0, 3.0, T,
         [](const X& x) { return causal_softmax(transpose(x[0], 0, 1), 0.7); }),
      op("causal_softmax_long_rows", {{2, 3, 400}}, -5.0, 5.0, T,
         [](const X& x) { return causal_softmax(x[0], 0.125); }),
      op("causal_attention_square", {{2, 2, 5, 3}, {2, 2, 5, 3}, {2, 2, 5, 3}}, -1, 1, T,
         [](const X& x) { return causal_attention(x[0], x[1], x[2], 0.6); }),
      op("causal_attention_blocks", {{1, 70, 2}, {1, 70, 2}, {1, 70, 2}}, -1, 1, T,
         [](const X& x) { return causal_attention(x[0], x[1], x[2], 0.8); }),
      // Tk = 7 > T = 4: the queries are the last 4 of 7 positions
      op("causal_attention_cached", {{2, 7, 3}, {2, 7, 3}, {2, 7, 3}}, -1, 1, T,
         [](const X& x) { return causal_attention(slice(x[0], 1, 3, 7), x[1], x[2], 0.9); }),
      // v the transpose of [B, T, H, hd], as attention passes it
      op("causal_attention_strided_v", {{1, 2, 6, 3}, {1, 2, 6, 3}, {1, 6, 2, 3}}, -1, 1, T,
         [](const X& x) { return causal_attention(x[0], x[1], transpose(x[2], 1, 2), 0.7); }),
      op("causal_attention_blocks_cached_strided", {{1, 2, 70, 2}, {2, 1, 75, 2}, {1, 75, 2, 2}},
         -1, 1, T,
         [](const X& x) {
           return causal_attention(x[0], transpose(x[1], 0, 1), transpose(x[2], 1, 2), 0.7);
         }),
      // Tk 75 > T 70, v the transpose of [B, Tk, H, hd]
      large_shapes(
          op("causal_attention_cached_strided_v", {{2, 3, 70, 8}, {2, 3, 75, 8}, {2, 75, 3, 8}},
             -2.0, 2.0, T,
             [](const X& x) { return causal_attention(x[0], x[1], transpose(x[2], 1, 2), 0.25); })),
      op("rotary", {{2, 3, 4}},
         [](const X& x) {
           return rotary(x[0], rope_table(3, 2, 1.0, x), rope_table(3, 2, 2.0, x));
         }),
      // [B, T, H, hd] seen as [B, H, T, hd], as attention does
      op("rotary_heads_view", {{2, 3, 2, 6}},
         [](const X& x) {
           return rotary(transpose(x[0], 1, 2), rope_table(3, 3, 0.5, x), rope_table(3, 3, 1.5, x));
         }),
      // random tables, drawn alike on every device
      op("rotary_heads_view_large", {{2, 5, 3, 8}},
         [](const X& x) {
           Generator g(5);
           Tensor c = normal({5, 4}, 0, 1, g, x[0].dtype(), dev(x)),
                  s = normal({5, 4}, 0, 1, g, x[0].dtype(), dev(x));
           return rotary(transpose(x[0], 1, 2), c, s);
         }),
      // norms
      op("rms_norm", {{3, 5}, {5}}, [](const X& x) { return rms_norm(x[0], x[1], 1e-6); }),
      op("rms_norm_3d_transposed", {{4, 2, 3}, {3}},
         [](const X& x) { return rms_norm(transpose(x[0], 0, 1), x[1]); }),
      op("layer_norm", {{3, 5}, {5}, {5}},
         [](const X& x) { return layer_norm(x[0], x[1], x[2], 1e-5); }),
      large_shapes(op("layer_norm_large", {{200, 300}, {300}, {300}},
                      [](const X& x) { return layer_norm(x[0], x[1], x[2], 1e-5); })),
      op("batch_norm_train_axis1", {{4, 3, 2}},
         [](const X& x) {
           Tensor rm = zeros({3}, x[0].dtype(), dev(x)), rv = ones({3}, x[0].dtype(), dev(x));
           return batch_norm(x[0], 1, rm, rv, true);
         }),
      op("batch_norm_eval", {{5, 2}},
         [](const X& x) {
           Tensor rm = full({2}, 0.3, x[0].dtype(), dev(x)),
                  rv = full({2}, 1.7, x[0].dtype(), dev(x));
           return batch_norm(x[0], -1, rm, rv, false);
         }),
      // indexing
      op("embedding", {{4, 3}},
         [](const X& x) {
           return embedding(x[0], ids({3, 1, 3, 0}, {2, 2}, x));
         }),
      // 600 ids: index_add scans more than one block of indices
      large_shapes(op("embedding_large", {{50, 300}},
                      [](const X& x) {
                        return embedding(x[0], random_ids({20, 30}, 50, 9, dev(x)));
                      })),
      op("index_select_axis1", {{2, 3, 2}},
         [](const X& x) {
           return index_select(x[0], 1, ids({2, 0, 2}, {3}, x));
         }),
      op("gather_axis1", {{2, 4}},
         [](const X& x) {
           return gather(x[0], 1, ids({0, 2, 1, 1, 0, 0}, {2, 3}, x));
         }),
      op("gather_transposed_index", {{2, 4}},
         [](const X& x) {
           return gather(x[0], 1, transpose(ids({0, 1, 3, 3, 2, 0}, {3, 2}, x), 0, 1));
         }),
      op("scatter_add", {{2, 4}, {2, 3}},
         [](const X& x) {
           return scatter_add(x[0], 1, ids({0, 2, 1, 1, 0, 0}, {2, 3}, x), x[1]);
         }),
      op("scatter_add_axis0_transposed_src", {{3, 3}, {3, 2}},
         [](const X& x) {
           return scatter_add(x[0], 0, ids({2, 0, 2, 1, 2, 2}, {2, 3}, x), transpose(x[1], 0, 1));
         }),
      op("topk", {{3, 5}}, [](const X& x) { return topk(x[0], 2).first; }),
      op("topk_long_rows", {{5, 100}}, [](const X& x) { return topk(x[0], 8).first; }),
      forward_only(op("topk_indices", {{6, 77}},
                      [](const X& x) { return cast(topk(x[0], 8).second, x[0].dtype()); })),
      // shape ops; `_contiguous` makes CUDA copy the strided view itself
      op("reshape", {{2, 3, 2}},
         [](const X& x) {
           return reshape(x[0], {3, -1});
         }),
      op("reshape_noncontiguous", {{2, 3}},
         [](const X& x) { return reshape(transpose(x[0], 0, 1), {6}); }),
      op("permute", {{2, 3, 4}},
         [](const X& x) {
           return permute(x[0], {2, 0, 1});
         }),
      op("permute_contiguous", {{2, 3, 4}},
         [](const X& x) {
           return contiguous(permute(x[0], {2, 0, 1}));
         }),
      op("slice", {{4, 2}}, [](const X& x) { return slice(x[0], 0, 1, 3); }),
      op("expand", {{3, 1}},
         [](const X& x) {
           return expand(x[0], {2, 3, 4});
         }),
      op("expand_contiguous", {{3, 1}},
         [](const X& x) {
           return contiguous(expand(x[0], {2, 3, 4}));
         }),
      op("unsqueeze_squeeze", {{2, 3}}, [](const X& x) { return squeeze(unsqueeze(x[0], 1), 1); }),
      op("contiguous", {{2, 3}}, [](const X& x) { return contiguous(transpose(x[0], 0, 1)); }),
      op("concat", {{2, 1}, {2, 3}},
         [](const X& x) {
           return concat({x[0], x[1]}, 1);
         }),
      op("concat_transposed", {{2, 1}, {3, 2}},
         [](const X& x) {
           return concat({x[0], transpose(x[1], 0, 1)}, 1);
         }),
      op("split", {{3, 3}},
         [](const X& x) {
           auto p = split(x[0], {1, 2}, 1);
           return add(mul(p[0], 2.0), sum(p[1], {1}, true));
         }),
      // Through the other float type, so both casts and their backwards run: F32 → F64 → F32 in
      // the parity (exact), F64 → F32 → F64 in the gradcheck. There F32 rounds each of x ± h by up
      // to 6e-8, so the difference quotient is off by up to 1.2e-7 / 2h per unit of w: 6e-6 with
      // h = 1e-2 (0.06 with the default 1e-6). The op is linear: a large h costs no truncation.
      with_gradcheck(op("cast_roundtrip", {{3, 4}}, -1.0, 1.0, kExact,
                        [](const X& x) {
                          const DType t = x[0].dtype();
                          return cast(cast(x[0], t == DType::F64 ? DType::F32 : DType::F64), t);
                        }),
                     1e-2, 1e-5),
      forward_only(
          op("cast_int_roundtrip", {{4, 4}},
             [](const X& x) { return cast(cast(mul(x[0], 10.0), DType::I32), x[0].dtype()); })),
      // empty tensors: no kernel may be launched with an empty grid
      op("add_empty", {{0, 3}, {3}}, [](const X& x) { return add(x[0], x[1]); }),
      op("sum_over_empty_axis", {{3, 0}}, [](const X& x) { return sum(x[0], {1}); }),
      op("matmul_k0", {{2, 0}, {0, 3}}, [](const X& x) { return matmul(x[0], x[1]); }),
      op("softmax_no_rows", {{0, 4}}, [](const X& x) { return softmax(x[0], -1); }),
  };
}

}  // namespace

const std::vector<OpCase>& op_cases() {
  static const std::vector<OpCase> cases = build();
  return cases;
}

std::vector<OpCase> op_cases_for(Suite suite) {
  std::vector<OpCase> out;
  for (const OpCase& c : op_cases())
    if (c.suites & suite) out.push_back(c);
  return out;
}

void PrintTo(const OpCase& c, std::ostream* os) {
  *os << c.name;
}

std::string op_case_name(const ::testing::TestParamInfo<OpCase>& info) {
  return info.param.name;
}

Tensor random_ids(const Shape& s, int64_t n, uint64_t seed, Device d, int32_t every_ignored) {
  Generator g(seed);
  std::vector<int32_t> v(static_cast<size_t>(shape_numel(s)));
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = every_ignored && i % every_ignored == 1 ? -100 : static_cast<int32_t>(g.randint(n));
  return from_vector(v, s).to(d);
}

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

CaseOutcome run_case(const OpCase& c, const std::vector<Tensor>& inputs, Device d) {
  std::vector<Tensor> leaves;
  for (const Tensor& t : inputs) leaves.push_back(t.to(d).detach().requires_grad_());
  Tensor out = c.f(leaves);
  EXPECT_EQ(out.device(), d) << c.name;
  CaseOutcome r{out.detach().to(Device::cpu()), {}};
  if (!c.differentiable) return r;
  Generator g(7);
  Tensor w = randn(out.shape(), g).to(d);
  sum(mul(out, w)).backward();
  for (const Tensor& l : leaves)
    r.grads.push_back(l.grad().defined() ? l.grad().to(Device::cpu()) : zeros(l.shape()));
  return r;
}

}  // namespace monet::testing
