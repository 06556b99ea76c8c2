// MONET-HD and MONET-VD against their definitions: a slow reference, written here, that builds
// every composed expert E_ij separately and sums Σ_h Σ_ij ĝ1_hi ĝ2_hj E_ij(x) literally. The
// efficient layers must match it in the output and in the gradient of every weight and of the
// routing scores; finite differences check the efficient layers directly; removing experts (pairs,
// sub-experts, a routing group through interp::ExpertModel) equals the reference without them; and
// no B·T·H·N-sized buffer is ever allocated. The router and the aux losses: test_monet_router.cpp.
#include <gtest/gtest.h>

#include <map>
#include <optional>

#include "core/memory.h"
#include "eval/experts.h"
#include "gradcheck.h"
#include "kernel_paths.h"
#include "monet/aux_loss.h"
#include "monet/masking.h"
#include "monet/monet_hd.h"
#include "monet/monet_layer.h"
#include "monet/monet_vd.h"
#include "train/config.h"
#include "train/model.h"

using namespace monet;
using namespace monet::moe;
using monet::testing::for_each_kernel_path;

namespace {

constexpr int64_t B = 2, T = 3, D = 6, H = 2, SQRT_N = 4, M = 4;

Tensor rnd(const Shape& s, Generator& g, double scale = 0.5) {
  return mul(randn(s, g, DType::F64), scale);
}
Tensor leaf(Tensor t) {
  return t.requires_grad_();
}

// Router logits as leaves; the scores are their softmax over √N, as the router produces, so the
// gradients checked include the router's path. (The efficient forms keep the factors Σ_i ĝ1_hi
// that the paper sets to 1, so they also equal the reference off the simplex: the masking tests
// rely on that.)
struct Logits {
  Tensor z1, z2;
  Routing routing() const { return {softmax(z1, -1), softmax(z2, -1)}; }
};
Logits random_logits(Generator& g) {
  return {leaf(rnd({B, T, H, SQRT_N}, g, 1.5)), leaf(rnd({B, T, H, SQRT_N}, g, 1.5))};
}
Routing random_routing(Generator& g) {
  return random_logits(g).routing();
}

// Block `i` of `n` equal blocks of rows (axis 0) or columns (axis 1).
Tensor block(const Tensor& w, int64_t axis, int64_t i, int64_t size) {
  return slice(w, axis, i * size, (i + 1) * size);
}
Tensor lin(const Tensor& x, const Tensor& w) {
  return matmul(x, transpose(w, 0, 1));
}

// Σ_h ĝ1_hi ĝ2_hj for one expert as a [B, T, 1] weight.
Tensor pair_score(const Routing& r, int64_t i, int64_t j) {
  return unsqueeze(
      sum(mul(slice(r.g1, 3, i, i + 1), slice(r.g2, 3, j, j + 1)).reshape({B, T, H}), {2}), -1);
}

bool dropped(const ExpertPairs& removed, int64_t i, int64_t j) {
  for (const auto& [a, b] : removed)
    if (a == i && b == j) return true;
  return false;
}

Tensor reference_hd(const Tensor& x, const HdWeights& w, const Routing& r,
                    const ExpertPairs& removed = {}) {
  Tensor y = zeros({B, T, D}, DType::F64);
  for (int64_t i = 0; i < SQRT_N; ++i)
    for (int64_t j = 0; j < SQRT_N; ++j) {
      if (dropped(removed, i, j)) continue;
      // E_ij(x) = V_j relu²(U_i x + b1_i) + b2_j
      Tensor hidden = relu2(add(lin(x, block(w.u_weight, 0, i, M)), block(w.u_bias, 0, i, M)));
      Tensor e = add(lin(hidden, block(w.v_weight, 1, j, M)), slice(w.b, 0, j, j + 1).reshape({D}));
      y = add(y, mul(pair_score(r, i, j), e));
    }
  return y;
}

Tensor reference_vd(const Tensor& x, const VdWeights& w, const Routing& r,
                    const ExpertPairs& removed = {}) {
  const int64_t hm = M / 2;
  Tensor y = zeros({B, T, D}, DType::F64);
  for (int64_t i = 0; i < SQRT_N; ++i)
    for (int64_t j = 0; j < SQRT_N; ++j) {
      if (dropped(removed, i, j)) continue;
      Tensor a1 = relu2(add(lin(x, block(w.u1_weight, 0, i, hm)), block(w.u1_bias, 0, i, hm)));
      Tensor a2 = relu2(add(lin(x, block(w.u2_weight, 0, j, hm)), block(w.u2_bias, 0, j, hm)));
      // top = V11_i a1_i + V12_i a2_j + b12_i,  bottom = V21_j a1_i + V22_j a2_j + b22_j
      Tensor top = add(add(lin(a1, block(w.v11, 1, i, hm)), lin(a2, block(w.v12, 1, i, hm))),
                       slice(w.b1, 0, i, i + 1).reshape({D / 2}));
      Tensor bottom = add(add(lin(a1, block(w.v21, 1, j, hm)), lin(a2, block(w.v22, 1, j, hm))),
                          slice(w.b2, 0, j, j + 1).reshape({D / 2}));
      y = add(y, mul(pair_score(r, i, j), concat({top, bottom}, -1)));
    }
  return y;
}

HdWeights random_hd(Generator& g) {
  return {leaf(rnd({SQRT_N * M, D}, g)), leaf(rnd({SQRT_N * M}, g)), leaf(rnd({D, SQRT_N * M}, g)),
          leaf(rnd({SQRT_N, D}, g))};
}
VdWeights random_vd(Generator& g) {
  const int64_t f = SQRT_N * M / 2;
  return {leaf(rnd({f, D}, g)),          leaf(rnd({f}, g)),
          leaf(rnd({f, D}, g)),          leaf(rnd({f}, g)),
          leaf(rnd({D / 2, f}, g)),      leaf(rnd({D / 2, f}, g)),
          leaf(rnd({D / 2, f}, g)),      leaf(rnd({D / 2, f}, g)),
          leaf(rnd({SQRT_N, D / 2}, g)), leaf(rnd({SQRT_N, D / 2}, g))};
}

// Output and gradients of every leaf in `params` agree between the efficient and reference forms.
void expect_same_function(const std::function<Tensor()>& efficient,
                          const std::function<Tensor()>& reference, std::vector<Tensor> params) {
  Generator g(99);
  Tensor y1 = efficient(), y2 = reference();
  Tensor w = randn(y1.shape(), g, DType::F64);
  std::vector<double> a = y1.to_vector<double>(), b = y2.to_vector<double>();
  for (size_t k = 0; k < a.size(); ++k)
    ASSERT_NEAR(a[k], b[k], 1e-10 * (1 + std::abs(b[k]))) << "output " << k;
  auto grads = [&](const Tensor& y) {
    for (Tensor& p : params) p.set_grad(Tensor());
    sum(mul(y, w)).backward();
    std::vector<std::vector<double>> gs;
    for (Tensor& p : params)
      gs.push_back(p.grad().defined() ? p.grad().to_vector<double>()
                                      : std::vector<double>(p.numel(), 0.0));
    return gs;
  };
  auto g1 = grads(y1), g2 = grads(y2);
  for (size_t p = 0; p < params.size(); ++p)
    for (size_t k = 0; k < g1[p].size(); ++k)
      ASSERT_NEAR(g1[p][k], g2[p][k], 1e-9 * (1 + std::abs(g2[p][k])))
          << "param " << p << " element " << k;
}

}  // namespace

TEST(MonetHd, MatchesEveryExpertMaterialised) {
  for_each_kernel_path([&] {
    Generator g(1);
    Tensor x = leaf(rnd({B, T, D}, g, 1.0));
    HdWeights w = random_hd(g);
    Logits z = random_logits(g);
    expect_same_function([&] { return monet_hd(x, w, z.routing()); },
                         [&] { return reference_hd(x, w, z.routing()); },
                         {x, w.u_weight, w.u_bias, w.v_weight, w.b, z.z1, z.z2});
  });
}

TEST(MonetVd, MatchesEveryExpertMaterialised) {
  for_each_kernel_path([&] {
    Generator g(2);
    Tensor x = leaf(rnd({B, T, D}, g, 1.0));
    VdWeights w = random_vd(g);
    Logits z = random_logits(g);
    const std::vector<Tensor> wrt{x,     w.u1_weight, w.u1_bias, w.u2_weight, w.u2_bias,
                                  w.v11, w.v12,       w.v21,     w.v22,       w.b1,
                                  w.b2,  z.z1,        z.z2};
    // The CPU path (vd_mix, one product per half) and the composed terms (the CUDA path).
    expect_same_function([&] { return monet_vd(x, w, z.routing()); },
                         [&] { return reference_vd(x, w, z.routing()); }, wrt);
    expect_same_function([&] { return monet_vd_composed(x, w, z.routing()); },
                         [&] { return reference_vd(x, w, z.routing()); }, wrt);
  });
}

TEST(MonetHd, GradcheckWithRoutingHeldFixed) {
  for_each_kernel_path([&] {
    Generator g(3);
    Routing r = random_routing(g);
    HdWeights w0 =
        random_hd(g);  // scores are inputs here: the layer is checked off the simplex too
    monet::testing::expect_gradcheck(
        "monet_hd",
        [](const std::vector<Tensor>& p) {
          return monet_hd(p[0], {p[1], p[2], p[3], p[4]}, {p[5], p[6]});
        },
        {rnd({B, T, D}, g, 1.0), w0.u_weight, w0.u_bias, w0.v_weight, w0.b, r.g1, r.g2});
  });
}

TEST(MonetVd, GradcheckWithRoutingHeldFixed) {
  for_each_kernel_path([&] {
    Generator g(4);
    Routing r = random_routing(g);
    VdWeights w = random_vd(g);
    monet::testing::expect_gradcheck(
        "monet_vd",
        [](const std::vector<Tensor>& p) {
          return monet_vd(p[0], {p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10]},
                          {p[11], p[12]});
        },
        {rnd({B, T, D}, g, 1.0), w.u1_weight, w.u1_bias, w.u2_weight, w.u2_bias, w.v11, w.v12,
         w.v21, w.v22, w.b1, w.b2, r.g1, r.g2});
  });
}

TEST(MonetLayers, NeverAllocateATokenTimesNBuffer) {
  // B·T = 64 tokens, H = 4, √N = 64 (N = 4096), m = 8: a B·T·H·N float buffer would be 4 MiB,
  // B·T·N·m 8 MiB. The largest allocation of the whole forward+backward must stay far below.
  const int64_t b = 4, t = 16, d = 32, h = 4, sn = 64, m = 8;
  Generator g(7);
  Tensor x = randn({b, t, d}, g).requires_grad_();
  auto leafs = [&](const Shape& s) { return mul(randn(s, g), 0.02).detach().requires_grad_(); };
  HdWeights hd{leafs({sn * m, d}), leafs({sn * m}), leafs({d, sn * m}), leafs({sn, d})};
  VdWeights vd{leafs({sn * m / 2, d}),     leafs({sn * m / 2}),        leafs({sn * m / 2, d}),
               leafs({sn * m / 2}),        leafs({d / 2, sn * m / 2}), leafs({d / 2, sn * m / 2}),
               leafs({d / 2, sn * m / 2}), leafs({d / 2, sn * m / 2}), leafs({sn, d / 2}),
               leafs({sn, d / 2})};
  Tensor w1 = leafs({h * sn, d}), w2 = leafs({h * sn, d});
  Tensor rm = zeros({h}), rv = ones({h});
  memory::reset_peak(DeviceType::CPU);
  const double sigma = routing_threshold(8, sn);
  Routing r{
      adaptive_routing(matmul(x, transpose(w1, 0, 1)).reshape({b, t, h, sn}), rm, rv, true, sigma),
      adaptive_routing(matmul(x, transpose(w2, 0, 1)).reshape({b, t, h, sn}), rm, rv, true, sigma)};
  Tensor loss = add(sum(add(monet_hd(x, hd, r), monet_vd(x, vd, r))),
                    add(uniformity_loss(r), ambiguity_loss(r)));
  loss.backward();
  const int64_t token_h_n = b * t * h * sn * sn * 4;  // bytes of one B·T·H·N float buffer
  const int64_t largest = memory::stats(DeviceType::CPU).largest_allocation;
  EXPECT_LT(largest, token_h_n / 4) << "largest allocation " << largest << " bytes";
  EXPECT_GT(largest, 0);
}

// Removing composed experts (i, j) exactly: the layer minus their contribution equals the
// reference that materialises every expert and skips the removed ones.
TEST(MonetMasking, RemovingPairsEqualsTheReferenceWithoutThem) {
  Generator g(8);
  Tensor x = rnd({B, T, D}, g, 1.0);
  Routing r = random_routing(g);
  const ExpertPairs removed{{0, 1}, {2, 2}, {3, 0}, {0, 3}};
  HdWeights hd = random_hd(g);
  VdWeights vd = random_vd(g);
  auto same = [](const Tensor& a, const Tensor& b) {
    std::vector<double> u = a.to_vector<double>(), v = b.to_vector<double>();
    for (size_t k = 0; k < u.size(); ++k) ASSERT_NEAR(u[k], v[k], 1e-10 * (1 + std::abs(v[k])));
  };
  // The sparse CPU kernel and the composed form, on dense routing and on routing with zeros (a
  // token skips the pairs whose sub-experts it does not route to).
  const Routing sparse = mask_subexperts(r, {1}, {2});
  for (bool composed : {false, true}) {
    SCOPED_TRACE(composed ? "composed" : "sparse kernel");
    std::optional<ComposedOnly> scope;
    if (composed) scope.emplace();
    for (const Routing& q : {r, sparse}) {
      same(sub(monet_hd(x, hd, q), hd_contribution(x, hd, q, removed)),
           reference_hd(x, hd, q, removed));
      same(sub(monet_vd(x, vd, q), vd_contribution(x, vd, q, removed)),
           reference_vd(x, vd, q, removed));
    }
    // All pairs removed: nothing is left.
    ExpertPairs all;
    for (int64_t i = 0; i < SQRT_N; ++i)
      for (int64_t j = 0; j < SQRT_N; ++j) all.emplace_back(i, j);
    same(sub(monet_vd(x, vd, r), vd_contribution(x, vd, r, all)), zeros({B, T, D}, DType::F64));
    same(sub(monet_hd(x, hd, r), hd_contribution(x, hd, r, all)), zeros({B, T, D}, DType::F64));
  }
}

// Masking sub-expert i of the first router removes exactly the √N experts (i, ·).
TEST(MonetMasking, SubexpertMaskRemovesItsRowOfExperts) {
  Generator g(9);
  Tensor x = rnd({B, T, D}, g, 1.0);
  Routing r = random_routing(g);
  HdWeights hd = random_hd(g);
  ExpertPairs row;
  for (int64_t j = 0; j < SQRT_N; ++j) row.emplace_back(1, j);
  std::vector<double> a = monet_hd(x, hd, mask_subexperts(r, {1}, {})).to_vector<double>();
  std::vector<double> b = reference_hd(x, hd, r, row).to_vector<double>();
  for (size_t k = 0; k < a.size(); ++k) ASSERT_NEAR(a[k], b[k], 1e-10 * (1 + std::abs(b[k])));
  EXPECT_THROW(mask_subexperts(r, {SQRT_N}, {}), Error);
  EXPECT_THROW(hd_contribution(x, hd, r, {{0, SQRT_N}}), Error);
}

// The path `monet mask` takes: interp::ExpertModel::remove on a routing group of a transformer.
// In every layer of the group (the owner of the router and the layer that reuses its scores)
// the FFN output equals the reference without the removed pairs; the next group is untouched;
// restore() gives the full layers back.
TEST(MonetMasking, ExpertModelRemovesThePairsFromEveryLayerOfTheGroup) {
  for_each_kernel_path([&] {
    for (const char* kind : {"monet_hd", "monet_vd"}) {
      SCOPED_TRACE(kind);
      const Config cfg = parse_config(nlohmann::json::parse(fmt::format(
          R"({{"model": {{"d": {}, "layers": 3, "heads": 1, "context": 8, "ffn": {{"kind": "{}",
              "heads": {}, "sqrt_n": {}, "dim": {}, "topk": 2, "group": 2}}}}}})",
          D, kind, H, SQRT_N, M)));
      Generator g(21);
      auto model = build_model(cfg.model, g, DType::F64);
      model->eval();
      interp::ExpertModel em(*model, kind);
      ASSERT_EQ(em.sites().size(), 2u);
      EXPECT_EQ(em.sites()[0].layers, (std::vector<int>{0, 1}));
      EXPECT_EQ(em.sites()[1].layers, (std::vector<int>{2}));

      // Layer `layer`'s output on a fresh x against the reference without `gone`. Layer 1 uses the
      // scores the last forward of layer 0 left in the group.
      auto expect_reference = [&](int layer, const ExpertPairs& gone) {
        auto& ffn = dynamic_cast<MonetFeedForward&>(model->blocks()[layer]->ffn());
        std::map<std::string, Tensor> p;
        for (const auto& [name, t] : ffn.named_parameters()) p[name] = t;
        const Tensor x = rnd({B, T, D}, g, 1.0);
        const std::vector<double> y = ffn.forward(x).to_vector<double>();
        const Routing r = ffn.last_routing();
        const Tensor ref =
            ffn.options().vertical
                ? reference_vd(
                      x,
                      {p["u1.weight"], p["u1.bias"], p["u2.weight"], p["u2.bias"], p["v11.weight"],
                       p["v12.weight"], p["v21.weight"], p["v22.weight"], p["b1"], p["b2"]},
                      r, gone)
                : reference_hd(x, {p["u.weight"], p["u.bias"], p["v.weight"], p["b"]}, r, gone);
        const std::vector<double> want = ref.to_vector<double>();
        for (size_t k = 0; k < y.size(); ++k)
          ASSERT_NEAR(y[k], want[k], 1e-10 * (1 + std::abs(want[k])))
              << "layer " << layer << " element " << k;
      };
      const ExpertPairs removed{{0, 1}, {2, 2}, {3, 0}, {1, 3}};
      std::vector<int64_t> flat;
      for (const auto& [i, j] : removed) flat.push_back(i * SQRT_N + j);
      em.remove(0, flat);
      expect_reference(0, removed);
      expect_reference(1, removed);
      expect_reference(2, {});
      em.restore();
      expect_reference(0, {});
      expect_reference(1, {});
    }
  });
}
