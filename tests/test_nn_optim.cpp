// AdamW and SGD against updates computed by hand, the weight-decay rule, optimizer state save and
// load (a resumed run must continue bit for bit), gradient clipping and the LR schedule.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numbers>

#include "core/autograd.h"
#include "core/ops.h"
#include "kernel_paths.h"
#include "nn/optim.h"
#include "nn/transformer.h"

using namespace monet;
using namespace monet::nn;
using monet::testing::for_each_kernel_path;

namespace {

Tensor leaf(std::vector<double> v, Shape s) {
  return from_vector(v, s).requires_grad_();
}
std::vector<double> vec(const Tensor& t) {
  return t.to_vector<double>();
}

// Deep copies of named tensors (state_dict() returns live tensors).
NamedTensors clone(const NamedTensors& in) {
  NamedTensors out;
  for (auto& [n, t] : in) {
    Tensor c = empty(t.shape(), t.dtype());
    copy_(c, t);
    out.emplace_back(n, c);
  }
  return out;
}

}  // namespace

TEST(OptimAdamW, TwoStepsMatchHandComputedUpdate) {
  for_each_kernel_path([&] {
    Tensor w = leaf({0.5, -1.0, 2.0, 0.25}, {2, 2}), b = leaf({0.1, -0.2}, {2});
    AdamWOptions o;
    o.lr = 0.1;
    o.beta1 = 0.9;
    o.beta2 = 0.99;
    o.eps = 1e-8;
    o.weight_decay = 0.5;
    AdamW opt({{"w", w}, {"b", b}}, o);
    EXPECT_TRUE(opt.decays(0));
    EXPECT_FALSE(opt.decays(1));  // 1-D

    std::vector<double> pw = vec(w), pb = vec(b), mw(4, 0), vw(4, 0), mb(2, 0), vb(2, 0);
    const std::vector<std::vector<double>> gw{{0.3, -0.6, 0.0, 1.5}, {-0.1, 0.2, 0.4, -2.0}},
        gb{{1.0, -0.5}, {0.25, 0.0}};
    auto reference = [&](std::vector<double>& p, std::vector<double>& m, std::vector<double>& v,
                         const std::vector<double>& g, int t, double wd) {
      for (size_t j = 0; j < p.size(); ++j) {
        p[j] *= 1 - o.lr * wd;
        m[j] = o.beta1 * m[j] + (1 - o.beta1) * g[j];
        v[j] = o.beta2 * v[j] + (1 - o.beta2) * g[j] * g[j];
        const double mhat = m[j] / (1 - std::pow(o.beta1, t)),
                     vhat = v[j] / (1 - std::pow(o.beta2, t));
        p[j] -= o.lr * mhat / (std::sqrt(vhat) + o.eps);
      }
    };
    for (int t = 1; t <= 2; ++t) {
      w.set_grad(from_vector(gw[t - 1], {2, 2}));
      b.set_grad(from_vector(gb[t - 1], {2}));
      opt.step();
      reference(pw, mw, vw, gw[t - 1], t, o.weight_decay);
      reference(pb, mb, vb, gb[t - 1], t, 0.0);
      std::vector<double> gotw = vec(w), gotb = vec(b);
      for (int j = 0; j < 4; ++j) EXPECT_NEAR(gotw[j], pw[j], 1e-14) << "step " << t << " w " << j;
      for (int j = 0; j < 2; ++j) EXPECT_NEAR(gotb[j], pb[j], 1e-14) << "step " << t << " b " << j;
    }
    // the first step moves each weight by about lr (|m̂/√v̂| = 1), whatever the gradient's size
    NamedTensors st = opt.state_dict();
    ASSERT_EQ(st.size(), 6u);
    EXPECT_EQ(st[0].first, "step.w");
    EXPECT_EQ(st[1].first, "exp_avg.w");
    EXPECT_EQ(st[5].first, "exp_avg_sq.b");
    EXPECT_EQ(st[0].second.item(), 2.0);
    std::vector<double> m = vec(st[1].second);
    for (int j = 0; j < 4; ++j) EXPECT_NEAR(m[j], mw[j], 1e-15);
  });
}

TEST(OptimAdamW, F32UpdateAndNonContiguousGradient) {
  for_each_kernel_path([&] {
    Tensor w = from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3}).requires_grad_();
    AdamWOptions o;
    o.lr = 0.01;
    o.weight_decay = 0;
    AdamW opt({{"w", w}}, o);
    // a transposed gradient view: the optimizer must read it through its strides
    Tensor gt = from_vector<float>({1, -1, 2, -2, 3, -3}, {3, 2});
    w.set_grad(transpose(gt, 0, 1));  // = [[1, 2, 3], [-1, -2, -3]]
    opt.step();
    std::vector<float> got = w.to_vector<float>();
    const std::vector<float> want{0.99f, 1.99f, 2.99f, 4.01f, 5.01f, 6.01f};  // p − lr·sign(g)
    for (int j = 0; j < 6; ++j) EXPECT_NEAR(got[j], want[j], 1e-6);
  });
}

TEST(OptimAdamW, DefaultDecayRuleAndOverride) {
  Tensor e = leaf({1, 2, 3, 4}, {2, 2}), w = leaf({1, 2, 3, 4}, {2, 2}), g = leaf({1, 2}, {2});
  AdamW opt({{"embed.weight", e}, {"layers.0.attn.wq.weight", w}, {"norm.weight", g}});
  EXPECT_FALSE(opt.decays(0));
  EXPECT_TRUE(opt.decays(1));
  EXPECT_FALSE(opt.decays(2));
  AdamWOptions o;
  o.decays = [](const std::string& name, const Tensor&) { return name == "norm.weight"; };
  AdamW custom({{"embed.weight", e}, {"norm.weight", g}}, o);
  EXPECT_FALSE(custom.decays(0));
  EXPECT_TRUE(custom.decays(1));
  // with a zero gradient only the decay moves a parameter: p ← p(1 − lr·λ)
  o.lr = 0.5;
  o.weight_decay = 0.2;
  AdamW only_decay({{"embed.weight", e}, {"norm.weight", g}}, o);
  e.set_grad(zeros({2, 2}, DType::F64));
  g.set_grad(zeros({2}, DType::F64));
  only_decay.step();
  EXPECT_EQ(vec(e), (std::vector<double>{1, 2, 3, 4}));
  EXPECT_EQ(vec(g), (std::vector<double>{0.9, 1.8}));
}

TEST(OptimAdamW, SkipsParametersWithoutGradient) {
  Tensor a = leaf({1.0}, {1}), b = leaf({2.0}, {1});
  AdamW opt({{"a", a}, {"b", b}});
  a.set_grad(from_vector<double>({1.0}, {1}));
  opt.step();
  NamedTensors st = opt.state_dict();
  EXPECT_EQ(st[0].second.item(), 1.0);  // step.a
  EXPECT_EQ(st[3].second.item(), 0.0);  // step.b
  EXPECT_EQ(b.item(), 2.0);
  opt.zero_grad();
  EXPECT_FALSE(a.grad().defined());
}

// Train 3 steps, checkpoint (parameters + optimizer state), train 3 more; a fresh model and
// optimizer loaded from the checkpoint must reach bit-identical parameters.
TEST(OptimAdamW, StateDictResumeIsBitIdentical) {
  for_each_kernel_path([&] {
    TransformerConfig cfg;
    cfg.vocab = 11;
    cfg.d_model = 8;
    cfg.n_layers = 1;
    cfg.n_heads = 2;
    cfg.context = 6;
    Generator gen(3);
    std::vector<int32_t> toks(12);
    for (auto& t : toks) t = static_cast<int32_t>(gen.randint(11));
    Tensor ids = from_vector(toks, {2, 6});
    Tensor targets = from_vector(std::vector<int32_t>(toks.begin() + 1, toks.end()), {11});
    auto train = [&](Transformer& m, AdamW& opt, int steps) {
      for (int s = 0; s < steps; ++s) {
        opt.zero_grad();
        Tensor logits = reshape(m.forward(ids), {-1, 11});
        cross_entropy(slice(logits, 0, 0, 11), targets).backward();
        clip_grad_norm(m.parameters(), 1.0);
        opt.set_lr(scheduled_lr({1e-2, 1e-3, 2, 10}, s));
        opt.step();
      }
    };
    Generator g1(1), g2(2);
    Transformer a(cfg, g1), b(cfg, g2);
    AdamW oa(a.named_parameters()), ob(b.named_parameters());
    train(a, oa, 3);
    NamedTensors params = clone(a.named_parameters()), state = clone(oa.state_dict());
    train(a, oa, 3);

    auto bp = b.named_parameters();
    for (size_t i = 0; i < bp.size(); ++i) copy_(bp[i].second, params[i].second);
    ob.load_state_dict(state);
    train(b, ob, 3);
    auto ap = a.named_parameters();
    bp = b.named_parameters();
    for (size_t i = 0; i < ap.size(); ++i) {
      std::vector<float> x = ap[i].second.to_vector<float>(), y = bp[i].second.to_vector<float>();
      EXPECT_EQ(std::memcmp(x.data(), y.data(), x.size() * sizeof(float)), 0) << ap[i].first;
    }
    // mismatched checkpoints are refused
    NamedTensors missing(state.begin() + 1, state.end());
    EXPECT_THROW(ob.load_state_dict(missing), Error);
    NamedTensors wrong = state;
    wrong[1].second = zeros({3});
    EXPECT_THROW(ob.load_state_dict(wrong), Error);
  });
}

TEST(OptimAdamW, FitsATinyTransformerToOneBatch) {
  TransformerConfig cfg;
  cfg.vocab = 11;
  cfg.d_model = 16;
  cfg.n_layers = 1;
  cfg.n_heads = 2;
  cfg.context = 8;
  Generator g(4);
  Transformer m(cfg, g);
  std::vector<int32_t> toks(9);
  for (auto& t : toks) t = static_cast<int32_t>(g.randint(11));
  Tensor ids = from_vector(std::vector<int32_t>(toks.begin(), toks.end() - 1), {1, 8});
  Tensor targets = from_vector(std::vector<int32_t>(toks.begin() + 1, toks.end()), {8});
  AdamWOptions o;
  o.lr = 3e-2;
  AdamW opt(m.named_parameters(), o);
  double first = 0, last = 0;
  for (int s = 0; s < 60; ++s) {
    opt.zero_grad();
    Tensor loss = cross_entropy(reshape(m.forward(ids), {-1, 11}), targets);
    loss.backward();
    opt.step();
    (s == 0 ? first : last) = loss.item();
  }
  EXPECT_GT(first, 2.0);
  EXPECT_LT(last, 0.1);
}

TEST(OptimSGD, MomentumAndWeightDecayMatchHandComputed) {
  for_each_kernel_path([&] {
    Tensor p = leaf({1.0, -2.0}, {2});
    SGDOptions o;
    o.lr = 0.1;
    o.momentum = 0.9;
    o.weight_decay = 0.01;
    SGD opt({{"p", p}}, o);
    std::vector<double> ref{1.0, -2.0}, buf{0, 0};
    for (std::vector<double> g : {std::vector<double>{0.5, 1.0}, std::vector<double>{-1.0, 2.0}}) {
      p.set_grad(from_vector(g, {2}));
      opt.step();
      for (int j = 0; j < 2; ++j) {
        buf[j] = 0.9 * buf[j] + g[j] + 0.01 * ref[j];
        ref[j] -= 0.1 * buf[j];
      }
      std::vector<double> got = vec(p);
      for (int j = 0; j < 2; ++j) EXPECT_NEAR(got[j], ref[j], 1e-15);
    }
    ASSERT_EQ(opt.state_dict().size(), 1u);
    EXPECT_EQ(opt.state_dict()[0].first, "momentum_buffer.p");
    // plain SGD: no state, p ← p − lr·g
    Tensor q = leaf({1.0}, {1});
    SGD plain({{"q", q}}, SGDOptions{0.5});
    q.set_grad(from_vector<double>({2.0}, {1}));
    plain.step();
    EXPECT_EQ(q.item(), 0.0);
    EXPECT_TRUE(plain.state_dict().empty());
  });
}

TEST(OptimClipGradNorm, ScalesOnlyAboveMaxNormAndReturnsPreClipNorm) {
  for_each_kernel_path([&] {
    Tensor a = leaf({0, 0}, {2}), b = leaf({0}, {1}), c = leaf({0}, {1});
    a.set_grad(from_vector<double>({3.0, 0.0}, {2}));
    b.set_grad(from_vector<double>({4.0}, {1}));  // ‖g‖ = 5; c has no gradient
    EXPECT_DOUBLE_EQ(clip_grad_norm({a, b, c}, 10.0), 5.0);
    EXPECT_EQ(vec(a.grad()), (std::vector<double>{3.0, 0.0}));
    EXPECT_DOUBLE_EQ(clip_grad_norm({a, b, c}, 1.0), 5.0);
    const double s = 1.0 / (5.0 + 1e-6);
    EXPECT_NEAR(vec(a.grad())[0], 3.0 * s, 1e-15);
    EXPECT_NEAR(vec(b.grad())[0], 4.0 * s, 1e-15);
    EXPECT_FALSE(c.grad().defined());
    // two leaves holding the very same gradient tensor are each scaled once
    Tensor shared = from_vector<double>({6.0, 8.0}, {2});
    Tensor x = leaf({0, 0}, {2}), y = leaf({0, 0}, {2});
    x.set_grad(shared);
    y.set_grad(shared);
    EXPECT_NEAR(clip_grad_norm(NamedTensors{{"x", x}, {"y", y}}, 1.0), std::sqrt(200.0), 1e-12);
    EXPECT_NEAR(vec(x.grad())[0], 6.0 / (std::sqrt(200.0) + 1e-6), 1e-12);
    EXPECT_NEAR(vec(y.grad())[0], 6.0 / (std::sqrt(200.0) + 1e-6), 1e-12);
    EXPECT_EQ(vec(shared)[0], 6.0);
  });
}

TEST(OptimLrSchedule, WarmupPeakCosineEnd) {
  const LrSchedule s{1.0, 0.1, 10, 110};
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 0), 0.1);  // (0 + 1)/10
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 4), 0.5);
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 9), 1.0);      // end of warm-up
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 10), 1.0);     // peak: cosine at 0
  EXPECT_NEAR(scheduled_lr(s, 60), 0.55, 1e-12);  // halfway: min + ½(max − min)
  EXPECT_NEAR(scheduled_lr(s, 35), 0.1 + 0.45 * (1 + std::cos(std::numbers::pi / 4)), 1e-12);
  EXPECT_NEAR(scheduled_lr(s, 109), 0.1, 1e-3);
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 110), 0.1);  // end
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 500), 0.1);
  for (int64_t t = 10; t < 110; ++t) EXPECT_LE(scheduled_lr(s, t + 1), scheduled_lr(s, t));
  EXPECT_DOUBLE_EQ(scheduled_lr({1.0, 0.0, 0, 4}, 0), 1.0);  // no warm-up
  EXPECT_THROW(scheduled_lr({1.0, 0.0, 5, 5}, 0), Error);
}
