// The PEER layer (PeerFeedForward) against the brute-force reference of peer_reference.h, which
// scores ALL N experts per token and head: it must retrieve the same experts and match it in the
// output and in the gradient of x and of every parameter; finite differences check the layer
// itself (with the retrieval verified unchanged under the perturbation: top-k is discontinuous);
// BatchNorm switches between batch and running statistics; the u/v gradients touch only retrieved
// rows; expert removal is exact; and the parameter count, metrics, options and transformer wiring.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "core/memory.h"
#include "gradcheck.h"
#include "kernel_paths.h"
#include "monet/peer.h"
#include "nn/transformer.h"
#include "peer_reference.h"

using namespace monet;
using namespace monet::moe;
using namespace monet::testing::peer_reference;
using monet::testing::for_each_kernel_path;

namespace {

// Output and the gradients of x and of every parameter agree between layer and reference.
void expect_layer_matches_reference(const PeerOptions& o, uint64_t seed) {
  Generator g(seed);
  PeerFeedForward layer(o, g, f64());
  Tensor x = rnd({B, T, D}, g).requires_grad_();
  Tensor w = rnd({B, T, D}, g);
  const std::vector<std::pair<std::string, Tensor>> named = {
      {"x", x},
      {"query.weight", layer.query().weight()},
      {"keys1", layer.keys1()},
      {"keys2", layer.keys2()},
      {"u", layer.u()},
      {"v", layer.v()}};
  auto run = [&](const Tensor& y) {
    for (const auto& [n, t] : named) t.set_grad(Tensor());
    sum(mul(y, w)).backward();
    std::vector<std::vector<double>> gs;
    for (const auto& [n, t] : named) gs.push_back(grad_of(t));
    return gs;
  };
  Tensor y1 = layer.forward(x);
  Tensor ref_idx;
  Tensor y2 = reference_layer(o, x, params_of(layer), zeros({H * DQ}, DType::F64),
                              ones({H * DQ}, DType::F64), true, {}, &ref_idx);
  EXPECT_EQ(layer.last_retrieval().indices.to_vector<int32_t>(), ref_idx.to_vector<int32_t>())
      << "product keys retrieved other experts than scoring all N";
  expect_near(y1.to_vector<double>(), y2.to_vector<double>(), 1e-10, "output");
  auto g1 = run(y1), g2 = run(y2);
  for (size_t i = 0; i < named.size(); ++i)
    expect_near(g1[i], g2[i], 1e-9, "gradient of " + named[i].first);
}

}  // namespace

TEST(PeerLayer, MatchesBruteForceReferenceSoftmaxGelu) {
  for_each_kernel_path(
      [&] { expect_layer_matches_reference(small_options("gelu", "softmax", true), 2); });
}

TEST(PeerLayer, MatchesBruteForceReferenceSigmoidRelu) {
  for_each_kernel_path(
      [&] { expect_layer_matches_reference(small_options("relu", "sigmoid", true), 3); });
}

TEST(PeerLayer, MatchesBruteForceReferenceWithoutQueryBatchNorm) {
  for_each_kernel_path(
      [&] { expect_layer_matches_reference(small_options("gelu", "softmax", false), 4); });
}

TEST(PeerLayer, GradcheckWithRetrievalHeldFixed) {
  for_each_kernel_path([&] {
    for (const PeerOptions& o :
         {small_options("gelu", "softmax", true), small_options("relu", "sigmoid", false)}) {
      Generator g(5);
      PeerFeedForward layer(o, g, f64());
      const Params p = params_of(layer);
      Tensor fixed;  // the retrieval at the unperturbed point; every evaluation must reproduce it
      auto f = [&](const std::vector<Tensor>& in) {
        Tensor q = matmul(in[0], transpose(in[1], 0, 1));
        if (o.query_batchnorm)  // training mode: batch statistics (fresh buffers, not read)
          q = batch_norm(q, 2, zeros({H * DQ}, DType::F64), ones({H * DQ}, DType::F64), true);
        PeerRetrieval r = product_key_topk(q.reshape({B, T, H, DQ}), in[2], in[3], K);
        if (!fixed.defined()) fixed = r.indices;
        EXPECT_EQ(r.indices.to_vector<int32_t>(), fixed.to_vector<int32_t>())
            << "a perturbation changed the retrieval";
        return peer_experts(in[0], in[4], in[5], r.indices, peer_gates(r.scores, o.score),
                            o.activation);
      };
      monet::testing::expect_gradcheck(
          "peer " + nn::activation_name(o.activation) + "/" + peer_score_name(o.score), f,
          {rnd({B, T, D}, g), p.wq, p.c1, p.c2, p.u, p.v});
    }
  });
}

TEST(PeerLayer, BatchNormTrainUsesBatchStatisticsEvalUsesRunningOnes) {
  Generator g(6);
  const PeerOptions o = small_options();
  PeerFeedForward layer(o, g, f64());
  const Params p = params_of(layer);
  Tensor x = add(rnd({B, T, D}, g, 3.0), 2.0);  // queries far from N(0, 1)
  const auto named = layer.named_buffers();
  ASSERT_EQ(named.size(), 2u);
  EXPECT_EQ(named[0].first, "query_norm.running_mean");
  EXPECT_EQ(named[1].first, "query_norm.running_var");
  Tensor rm = named[0].second, rv = named[1].second;

  // Train: batch statistics; the running mean moves by momentum 0.1 towards the batch mean.
  Tensor y_train = layer.forward(x);
  Tensor q = matmul(x, transpose(p.wq, 0, 1));
  expect_near(rm.to_vector<double>(), mul(mean(q, {0, 1}), 0.1).to_vector<double>(), 1e-12,
              "running mean");
  // ... and the training output does not read the running statistics.
  fill_(rm, 7.0);
  fill_(rv, 3.0);
  expect_near(layer.forward(x).to_vector<double>(), y_train.to_vector<double>(), 1e-12,
              "train output with other running statistics");

  // Eval: the running statistics, left unchanged; same as the reference in eval mode.
  layer.eval();
  const std::vector<double> rm_before = rm.to_vector<double>();
  Tensor y_eval = layer.forward(x);
  EXPECT_EQ(rm.to_vector<double>(), rm_before);
  Tensor ref = reference_layer(o, x, p, rm, rv, false);
  expect_near(y_eval.to_vector<double>(), ref.to_vector<double>(), 1e-10, "eval output");
  double diff = 0;
  for (double v : sub(y_eval, y_train).to_vector<double>()) diff = std::max(diff, std::abs(v));
  EXPECT_GT(diff, 1e-6) << "eval output should differ from train output here";
  // A single token works in eval (training BatchNorm needs more than one value per channel).
  EXPECT_EQ(layer.forward(slice(slice(x, 0, 0, 1), 1, 0, 1)).shape(), (Shape{1, 1, D}));
  layer.train();
  EXPECT_THROW(layer.forward(slice(slice(x, 0, 0, 1), 1, 0, 1)), Error);
}

TEST(PeerLayer, ParameterCountIs2NdPlusKeysPlusQuery) {
  Generator g(7);
  PeerFeedForward layer(small_options(), g, f64());
  const int64_t n = SQRT_N * SQRT_N;
  EXPECT_EQ(layer.num_parameters(), 2 * n * D + 2 * SQRT_N * (DQ / 2) + H * DQ * D);
  std::vector<std::string> names;
  for (const auto& [name, t] : layer.named_parameters()) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"query.weight", "keys1", "keys2", "u", "v"}));
  EXPECT_EQ(layer.u().shape(), (Shape{n, D}));
  EXPECT_EQ(layer.keys1().shape(), (Shape{SQRT_N, DQ / 2}));
  PeerFeedForward plain(small_options("gelu", "softmax", false), g, f64());
  EXPECT_TRUE(plain.named_buffers().empty());

  // The paper's setting on the meta device (shapes only): N = 1024², h = 8, k = 16, d = 2048.
  PeerOptions paper;
  paper.d = 2048;
  paper.sqrt_n = 1024;
  paper.heads = 8;
  paper.topk = 16;
  paper.d_query = 256;
  PeerFeedForward big(paper, g, {DType::F32, Device::meta(), 0.02});
  EXPECT_EQ(big.num_parameters(),
            2LL * 1024 * 1024 * 2048 + 2LL * 1024 * 128 + 8LL * 256 * 2048);  // ≈ 4.3B, as §3
}

TEST(PeerLayer, ExpertGradientTouchesOnlyRetrievedRows) {
  // N = 256 experts, 16 tokens × 2 heads × 2 experts: at most 64 rows retrieved.
  PeerOptions o = small_options();
  o.sqrt_n = 16;
  o.topk = 2;
  const int64_t n = 256, tokens = 16;
  Generator g(8);
  PeerFeedForward layer(o, g, f64());
  Tensor x = rnd({2, 8, D}, g).requires_grad_();
  memory::reset_peak(DeviceType::CPU);
  sum(mul(layer.forward(x), rnd({2, 8, D}, g))).backward();
  // Nothing larger than one [N, d] table gradient (per step, not per token) is ever allocated:
  // never tokens·h·N scores nor a per-token [N, d] gradient.
  const int64_t largest = memory::stats(DeviceType::CPU).largest_allocation;
  EXPECT_LE(largest, static_cast<int64_t>(n * D * sizeof(double)));
  EXPECT_LT(n * D, tokens * o.heads * n);  // the bound above is meaningful

  std::set<int64_t> retrieved;
  for (int32_t e : layer.last_retrieval().indices.to_vector<int32_t>()) retrieved.insert(e);
  ASSERT_LE(retrieved.size(), 64u);
  for (const Tensor& table : {layer.u(), layer.v()}) {
    ASSERT_EQ(table.grad().shape(), (Shape{n, D}));
    const std::vector<double> gr = table.grad().to_vector<double>();
    for (int64_t e = 0; e < n; ++e) {
      double norm = 0;
      for (int64_t c = 0; c < D; ++c) norm += std::abs(gr[e * D + c]);
      if (retrieved.count(e))
        EXPECT_GT(norm, 0.0) << "retrieved expert " << e << " got no gradient";
      else
        EXPECT_EQ(norm, 0.0) << "expert " << e << " was not retrieved but has a gradient";
    }
  }
}

TEST(PeerLayer, MaskedExpertsContributeExactlyNothing) {
  for_each_kernel_path([&] {
    Generator g(9);
    const PeerOptions o = small_options();
    PeerFeedForward layer(o, g, f64());
    layer.eval();  // fixed statistics: every forward retrieves the same experts
    Tensor x = rnd({B, T, D}, g);
    Tensor y_full = layer.forward(x);
    const std::vector<int32_t> ids = layer.last_retrieval().indices.to_vector<int32_t>();
    // Two retrieved experts and one that may or may not be.
    const std::set<int64_t> removed = {ids[0], ids[5], 15};
    layer.remove_experts({removed.begin(), removed.end()});
    Tensor y = layer.forward(x);
    EXPECT_EQ(layer.last_retrieval().indices.to_vector<int32_t>(), ids) << "retrieval changed";
    Tensor ref = reference_layer(o, x, params_of(layer), layer.named_buffers()[0].second,
                                 layer.named_buffers()[1].second, false, removed);
    expect_near(y.to_vector<double>(), ref.to_vector<double>(), 1e-10, "masked output");
    double diff = 0;
    for (double v : sub(y_full, y).to_vector<double>()) diff = std::max(diff, std::abs(v));
    EXPECT_GT(diff, 1e-6);

    // Removed rows get no gradient.
    sum(y).backward();
    const std::vector<double> gu = layer.u().grad().to_vector<double>();
    for (int64_t e : removed)
      for (int64_t c = 0; c < D; ++c) EXPECT_EQ(gu[e * D + c], 0.0);

    // Every expert removed: exactly zero. Empty mask: the full layer again, bit for bit.
    std::vector<int64_t> all(SQRT_N * SQRT_N);
    for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
    layer.remove_experts(all);
    for (double v : layer.forward(x).to_vector<double>()) EXPECT_EQ(v, 0.0);
    layer.remove_experts({});
    EXPECT_EQ(layer.forward(x).to_vector<double>(), y_full.to_vector<double>());
    EXPECT_THROW(layer.remove_experts({16}), Error);
  });
}

TEST(PeerLayer, ExposesRetrievalAndUsageMetrics) {
  Generator g(10);
  PeerOptions o = small_options();
  PeerFeedForward layer(o, g);  // F32, the training dtype
  EXPECT_TRUE(layer.metrics().empty());
  Tensor x = randn({B, T, D}, g);
  Tensor y = layer.forward(x);
  EXPECT_EQ(y.dtype(), DType::F32);
  const auto& last = layer.last_retrieval();
  ASSERT_EQ(last.indices.shape(), (Shape{B, T, H, K}));
  ASSERT_EQ(last.gates.shape(), (Shape{B, T, H, K}));
  for (int32_t e : last.indices.to_vector<int32_t>()) EXPECT_TRUE(e >= 0 && e < SQRT_N * SQRT_N);
  const std::vector<float> gates = last.gates.to_vector<float>(),
                           scores = last.scores.to_vector<float>();
  for (int64_t r = 0; r < B * T * H; ++r) {
    double s = 0;
    for (int64_t j = 0; j < K; ++j) s += gates[r * K + j];
    EXPECT_NEAR(s, 1.0, 1e-5);  // softmax over the k
    for (int64_t j = 1; j < K; ++j)
      EXPECT_GE(scores[r * K + j - 1], scores[r * K + j]);  // best first
  }
  auto m = layer.metrics();
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].first, "expert_usage");
  EXPECT_GT(m[0].second, 0.0);
  EXPECT_LE(m[0].second, 1.0);
  EXPECT_EQ(m[1].first, "expert_unevenness");
  EXPECT_GE(m[1].second, 0.0);
  // A masked F32 forward and backward run too.
  layer.remove_experts({0, 1, 2});
  sum(layer.forward(x)).backward();
  EXPECT_EQ(layer.u().grad().dtype(), DType::F32);
}

TEST(PeerLayer, PlugsIntoTheTransformer) {
  nn::TransformerConfig tc;
  tc.vocab = 11;
  tc.d_model = 8;
  tc.n_layers = 2;
  tc.n_heads = 2;
  tc.context = 8;
  Generator g(11);
  PeerOptions o = small_options();
  o.d = 8;
  auto model = std::make_shared<nn::Transformer>(
      tc, g, [&](int) { return std::make_shared<PeerFeedForward>(o, g, tc.param_options()); });
  bool found = false;
  for (const auto& [name, t] : model->named_parameters()) found = found || name == "layers.1.ffn.u";
  EXPECT_TRUE(found);
  Tensor ids = from_vector(std::vector<int32_t>{1, 2, 3, 4, 5, 6, 7, 8}, {2, 4});
  Tensor logits = model->forward(ids);
  EXPECT_EQ(logits.shape(), (Shape{2, 4, 11}));
  EXPECT_EQ(model->ffn_metrics().count("expert_usage"), 1u);
}

TEST(PeerOptions, ValidateNamesTheBadField) {
  auto fails_with = [](PeerOptions o, const std::string& word) {
    try {
      o.validate();
      ADD_FAILURE() << "no error for " << word;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(word), std::string::npos) << e.what();
    }
  };
  PeerOptions o = small_options();
  o.topk = SQRT_N + 1;
  fails_with(o, "topk");
  o = small_options();
  o.d_query = 5;
  fails_with(o, "d_query");
  o = small_options();
  o.activation = nn::Activation::ReLU2;
  fails_with(o, "activation");
  o = small_options();
  o.sqrt_n = 1;
  fails_with(o, "sqrt_n");
  EXPECT_NO_THROW(small_options().validate());
}
