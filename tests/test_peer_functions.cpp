// PEER's free functions against the brute-force reference of peer_reference.h: product-key
// retrieval finds the same experts, with the same scores, as scoring all N product keys; the fused
// and the gathered expert sums equal the expert-by-expert sum in the output and in every gradient
// (with experts repeated across heads and tokens, so the scatter-adds accumulate) and pass finite
// differences.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "gradcheck.h"
#include "monet/peer.h"
#include "peer_reference.h"

using namespace monet;
using namespace monet::moe;
using namespace monet::testing::peer_reference;
TEST(PeerProductKeys, SameTopKAsScoringAllExperts) {
  Generator g(1);
  for (int64_t k : {1, 4, 8}) {  // k = √N: every expert is a candidate
    Tensor q = rnd({4, 16, 2, 10}, g), c1 = rnd({8, 5}, g), c2 = rnd({8, 5}, g);
    PeerRetrieval pk = product_key_topk(q, c1, c2, k), bf = brute_force_topk(q, c1, c2, k);
    ASSERT_EQ(pk.indices.shape(), (Shape{4, 16, 2, k}));
    EXPECT_EQ(pk.indices.to_vector<int32_t>(), bf.indices.to_vector<int32_t>()) << "k = " << k;
    expect_near(pk.scores.to_vector<double>(), bf.scores.to_vector<double>(), 1e-12, "scores");
  }
}

TEST(PeerExperts, FusedMatchesGatherAndFiniteDifferences) {
  // Random retrieval with repeats (the same expert in several heads and tokens), so the
  // scatter-adds into u and v accumulate.
  Generator g(12);
  const int64_t n = 5;
  std::vector<int32_t> ids(B * T * H * K);
  for (auto& e : ids) e = static_cast<int32_t>(g.randint(n));
  Tensor indices = from_vector(ids, {B, T, H, K});
  Tensor x = rnd({B, T, D}, g).requires_grad_(), u = rnd({n, D}, g).requires_grad_(),
         v = rnd({n, D}, g).requires_grad_(), gates = rnd({B, T, H, K}, g).requires_grad_();
  Tensor w = rnd({B, T, D}, g);
  const std::vector<Tensor> leaves = {x, u, v, gates};
  auto run = [&](const Tensor& y) {
    for (const Tensor& t : leaves) t.set_grad(Tensor());
    sum(mul(y, w)).backward();
    std::vector<std::vector<double>> gs = {y.to_vector<double>()};
    for (const Tensor& t : leaves) gs.push_back(grad_of(t));
    return gs;
  };
  for (const std::string a : {"gelu", "relu"}) {
    auto fused = run(peer_experts_fused(x, u, v, indices, gates, nn::parse_activation(a)));
    auto gather = run(peer_experts_gather(x, u, v, indices, gates, nn::parse_activation(a)));
    auto ref = run(reference_experts(x, u, v, indices, gates, a));
    const char* what[] = {"output", "dx", "du", "dv", "dgates"};
    for (size_t i = 0; i < fused.size(); ++i) {
      expect_near(fused[i], ref[i], 1e-12, std::string("fused ") + what[i] + " " + a);
      expect_near(gather[i], ref[i], 1e-12, std::string("gather ") + what[i] + " " + a);
    }
  }
  for (auto* f : {&peer_experts_fused, &peer_experts_gather})
    monet::testing::expect_gradcheck("peer_experts",
                                     [&](const std::vector<Tensor>& p) {
                                       return (*f)(p[0], p[1], p[2], indices, p[3],
                                                   nn::Activation::GELU);
                                     },
                                     {x, u, v, gates});
  ids[0] = n;  // outside [0, N)
  EXPECT_THROW(
      peer_experts_fused(x, u, v, from_vector(ids, {B, T, H, K}), gates, nn::Activation::GELU),
      Error);
}
