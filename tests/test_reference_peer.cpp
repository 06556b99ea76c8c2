// PEER against its PyTorch twin (eval/reference/monet_ref.py): softmax and sigmoid scores, with and
// without query BatchNorm (training mode), as the free functions (the gather expert path) and as
// PeerFeedForward (the fused CPU expert path), each in F64 and in F32 on the golden files and
// tolerances of reference_golden.h. The retrieved experts are compared exactly.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "core/autograd.h"
#include "core/ops.h"
#include "kernel_paths.h"
#include "monet/peer.h"
#include "nn/linear.h"
#include "nn/mlp.h"
#include "reference_golden.h"

using namespace monet;
using namespace monet::moe;
using namespace monet::testing::golden;
using monet::testing::for_each_kernel_path;

namespace {

PeerOptions peer_options(const Golden& g) {
  PeerOptions o = PeerOptions::defaults(g.integer("d"));
  o.sqrt_n = g.integer("sqrt_n");
  o.heads = g.integer("heads");
  o.topk = g.integer("topk");
  o.d_query = g.integer("d_query");
  o.activation = nn::parse_activation(g.meta("activation"));
  o.score = g.meta("score") == "softmax" ? PeerScore::Softmax : PeerScore::Sigmoid;
  o.query_batchnorm = g.integer("query_batchnorm") != 0;
  o.validate();
  return o;
}

// The free functions (query, batch_norm, product_key_topk, peer_gates, peer_experts_gather).
void run_peer_functions(const std::string& name, DType dtype) {
  Golden g("ref_peer_" + name + ".safetensors");
  const Tol tol = tol_for(dtype);
  fmt::print("peer {} (functions, gather path), {}:\n", name, dtype_name(dtype));
  const PeerOptions o = peer_options(g);
  Tensor x = g.get("x", dtype, true);
  const int64_t B = x.size(0), T = x.size(1);
  std::map<std::string, Tensor> w;
  for (const char* n : {"query.weight", "keys1", "keys2", "u", "v"}) w[n] = g.get(n, dtype, true);
  Tensor q = nn::linear(x, w["query.weight"]);
  if (o.query_batchnorm) {
    Tensor rm = g.get("query_norm.running_mean", dtype),
           rv = g.get("query_norm.running_var", dtype);
    q = batch_norm(q, 2, rm, rv, true);
    expect_close("query_norm.running_mean (after)", rm, g.raw("query_norm.running_mean.after"),
                 tol);
    expect_close("query_norm.running_var (after)", rv, g.raw("query_norm.running_var.after"), tol);
  }
  q = q.reshape({B, T, o.heads, o.d_query});
  expect_close("q", q, g.raw("q"), tol);
  PeerRetrieval r = product_key_topk(q, w["keys1"], w["keys2"], o.topk);
  expect_equal_ints("indices (retrieved experts)", r.indices, g.raw("indices"));
  expect_close("scores", r.scores, g.raw("scores"), tol);
  Tensor gates = peer_gates(r.scores, o.score);
  expect_close("gates", gates, g.raw("gates"), tol);
  Tensor y = peer_experts_gather(x, w["u"], w["v"], r.indices, gates, o.activation);
  expect_close("y", y, g.raw("y"), tol);
  sum(mul(y, g.get("dy", dtype))).backward();
  expect_close("grad.x", x.grad(), g.raw("grad.x"), tol);
  for (const auto& [n, t] : w) expect_close("grad." + n, grad_or_zeros(t), g.raw("grad." + n), tol);
}

// The layer (PeerFeedForward, fused CPU expert path), weights copied by parameter name.
void run_peer_module(const std::string& name, DType dtype) {
  Golden g("ref_peer_" + name + ".safetensors");
  const Tol tol = tol_for(dtype);
  fmt::print("peer {} (PeerFeedForward), {}:\n", name, dtype_name(dtype));
  const PeerOptions o = peer_options(g);
  Generator gen(1);
  PeerFeedForward layer(o, gen, {dtype, Device::cpu(), 0.02});
  load_into(layer, g);
  layer.train();
  Tensor x = g.get("x", dtype, true);
  Tensor y = layer.forward(x);
  expect_equal_ints("indices (retrieved experts)", layer.last_retrieval().indices,
                    g.raw("indices"));
  expect_close("scores", layer.last_retrieval().scores, g.raw("scores"), tol);
  expect_close("gates", layer.last_retrieval().gates, g.raw("gates"), tol);
  expect_close("y", y, g.raw("y"), tol);
  for (const auto& [n, t] : layer.named_buffers())
    expect_close(n + " (after)", t, g.raw(n + ".after"), tol);
  sum(mul(y, g.get("dy", dtype))).backward();
  expect_close("grad.x", x.grad(), g.raw("grad.x"), tol);
  expect_param_grads(layer, g, tol);
}

}  // namespace

// PEER: softmax and sigmoid scores, with and without query BatchNorm (training mode).
TEST(ReferencePeer, SoftmaxBatchNormFunctionsF64) {
  for_each_kernel_path([] { run_peer_functions("softmax_bn", DType::F64); });
}
TEST(ReferencePeer, SoftmaxBatchNormFunctionsF32) {
  for_each_kernel_path([] { run_peer_functions("softmax_bn", DType::F32); });
}
TEST(ReferencePeer, SoftmaxBatchNormModuleF64) {
  for_each_kernel_path([] { run_peer_module("softmax_bn", DType::F64); });
}
TEST(ReferencePeer, SoftmaxBatchNormModuleF32) {
  for_each_kernel_path([] { run_peer_module("softmax_bn", DType::F32); });
}
TEST(ReferencePeer, SigmoidBatchNormFunctionsF64) {
  for_each_kernel_path([] { run_peer_functions("sigmoid_bn", DType::F64); });
}
TEST(ReferencePeer, SigmoidBatchNormFunctionsF32) {
  for_each_kernel_path([] { run_peer_functions("sigmoid_bn", DType::F32); });
}
TEST(ReferencePeer, SigmoidBatchNormModuleF64) {
  for_each_kernel_path([] { run_peer_module("sigmoid_bn", DType::F64); });
}
TEST(ReferencePeer, SigmoidBatchNormModuleF32) {
  for_each_kernel_path([] { run_peer_module("sigmoid_bn", DType::F32); });
}
TEST(ReferencePeer, SoftmaxFunctionsF64) {
  for_each_kernel_path([] { run_peer_functions("softmax", DType::F64); });
}
TEST(ReferencePeer, SoftmaxFunctionsF32) {
  for_each_kernel_path([] { run_peer_functions("softmax", DType::F32); });
}
TEST(ReferencePeer, SoftmaxModuleF64) {
  for_each_kernel_path([] { run_peer_module("softmax", DType::F64); });
}
TEST(ReferencePeer, SoftmaxModuleF32) {
  for_each_kernel_path([] { run_peer_module("softmax", DType::F32); });
}
TEST(ReferencePeer, SigmoidFunctionsF64) {
  for_each_kernel_path([] { run_peer_functions("sigmoid", DType::F64); });
}
TEST(ReferencePeer, SigmoidFunctionsF32) {
  for_each_kernel_path([] { run_peer_functions("sigmoid", DType::F32); });
}
TEST(ReferencePeer, SigmoidModuleF64) {
  for_each_kernel_path([] { run_peer_module("sigmoid", DType::F64); });
}
TEST(ReferencePeer, SigmoidModuleF32) {
  for_each_kernel_path([] { run_peer_module("sigmoid", DType::F32); });
}
