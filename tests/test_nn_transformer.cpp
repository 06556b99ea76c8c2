// Gradient checks of attention, RoPE, a Block and a whole tiny Transformer (every parameter, in
// double precision), KV-cache decoding against full recomputation, and the pluggable FFN slot.
#include <gtest/gtest.h>

#include "gradcheck.h"
#include "nn/transformer.h"

using namespace monet;
using namespace monet::nn;
using monet::testing::expect_gradcheck;

namespace {

// The idea of tests/gradcheck.h applied to a module's parameters: L = Σ f() ⊙ w with a fixed
// random w; autodiff's ∂L/∂p against central differences (h = 1e-6) for every element of every
// named parameter (F64, dense). Same tolerance rule: |ad − fd| ≤ atol + rtol·max(|ad|, |fd|).
void expect_param_gradcheck(const std::string& what, Module& m, const std::function<Tensor()>& f,
                            double rtol = 1e-5, double atol = 1e-7) {
  const double h = 1e-6;
  m.zero_grad();
  Tensor out = f();
  ASSERT_EQ(out.dtype(), DType::F64) << what;
  Generator g(1234);
  Tensor w = randn(out.shape(), g, DType::F64);
  sum(mul(out, w)).backward();
  auto loss_at = [&] {
    NoGradGuard ng;
    return sum(mul(f(), w)).item();
  };
  for (auto& [name, p] : m.named_parameters()) {
    ASSERT_TRUE(p.is_contiguous() && p.dtype() == DType::F64) << what << " " << name;
    Tensor grad = p.grad().defined() ? p.grad() : zeros(p.shape(), DType::F64);
    std::vector<double> ga = grad.to_vector<double>();
    double* x = p.data<double>();
    int failures = 0;
    for (int64_t j = 0; j < p.numel() && failures < 5; ++j) {
      const double keep = x[j];
      x[j] = keep + h;
      const double lp = loss_at();
      x[j] = keep - h;
      const double lm = loss_at();
      x[j] = keep;
      const double fd = (lp - lm) / (2 * h);
      const double tol = atol + rtol * std::max(std::abs(fd), std::abs(ga[j]));
      if (std::abs(fd - ga[j]) > tol) {
        ++failures;
        ADD_FAILURE() << what << ": " << name << " element " << j << ": autodiff " << ga[j]
                      << " vs finite difference " << fd;
      }
    }
  }
}

TransformerConfig tiny_config(Activation act = Activation::ReLU2) {
  TransformerConfig c;
  c.vocab = 11;
  c.d_model = 8;
  c.n_layers = 2;
  c.n_heads = 2;
  c.context = 8;
  c.mlp_activation = act;
  c.mlp_hidden = 12;
  c.dtype = DType::F64;
  c.init_std = 0.3;  // large enough that every path carries a visible gradient
  return c;
}

Tensor random_ids(Generator& g, int64_t B, int64_t T, int64_t vocab) {
  std::vector<int32_t> v(B * T);
  for (auto& x : v) x = static_cast<int32_t>(g.randint(vocab));
  return from_vector(v, {B, T});
}

}  // namespace

TEST(NnRope, Gradcheck) {
  Generator g(1);
  auto rope = std::make_shared<RotaryEmbedding>(6, 10, 10000.0, DType::F64);
  expect_gradcheck("rope", [&](const std::vector<Tensor>& x) { return rope->forward(x[0], 2); },
                   {randn({2, 2, 3, 6}, g, DType::F64)});
  // through a transposed view, as attention feeds it
  expect_gradcheck(
      "rope_view",
      [&](const std::vector<Tensor>& x) { return rope->forward(transpose(x[0], 1, 2)); },
      {randn({1, 4, 2, 6}, g, DType::F64)});
}

TEST(NnAttention, GradcheckInputAndParameters) {
  Generator g(2);
  auto rope = std::make_shared<const RotaryEmbedding>(4, 8, 10000.0, DType::F64);
  CausalSelfAttention attn(8, 2, rope, g, ParamOptions{DType::F64, Device::cpu(), 0.3});
  Tensor x = randn({2, 4, 8}, g, DType::F64);
  expect_gradcheck("attention_x",
                   [&](const std::vector<Tensor>& in) { return attn.forward(in[0]); }, {x});
  expect_param_gradcheck("attention", attn, [&] { return attn.forward(x); });
  // Grouped-query: 4 query heads over 2 key/value heads.
  auto rope2 = std::make_shared<const RotaryEmbedding>(2, 8, 10000.0, DType::F64);
  CausalSelfAttention gqa(8, 4, rope2, g, ParamOptions{DType::F64, Device::cpu(), 0.3}, 2);
  expect_gradcheck("attention_gqa_x",
                   [&](const std::vector<Tensor>& in) { return gqa.forward(in[0]); }, {x});
  expect_param_gradcheck("attention_gqa", gqa, [&] { return gqa.forward(x); });
}

TEST(NnBlock, GradcheckInputAndParameters) {
  Generator g(3);
  TransformerConfig cfg = tiny_config(Activation::SwiGLU);
  auto rope = std::make_shared<const RotaryEmbedding>(4, 8, 10000.0, DType::F64);
  auto ffn = std::make_shared<MLP>(8, 12, Activation::SwiGLU, g, cfg.param_options());
  Block block(cfg, rope, ffn, g);
  // perturb the norm gains away from 1 so their gradients are generic
  for (auto& [n, p] : block.named_parameters())
    if (p.dim() == 1) copy_(p, uniform(p.shape(), 0.5, 1.5, g, DType::F64));
  Tensor x = randn({2, 5, 8}, g, DType::F64);
  expect_gradcheck("block_x", [&](const std::vector<Tensor>& in) { return block.forward(in[0]); },
                   {x});
  expect_param_gradcheck("block", block, [&] { return block.forward(x); });
}

TEST(NnTransformer, GradcheckEveryParameter) {
  Generator g(4);
  for (Activation act : {Activation::ReLU2, Activation::GELU}) {
    Transformer m(tiny_config(act), g);
    for (auto& [n, p] : m.named_parameters())
      if (p.dim() == 1) copy_(p, uniform(p.shape(), 0.5, 1.5, g, DType::F64));
    Tensor ids = random_ids(g, 2, 5, 11);
    expect_param_gradcheck("transformer_" + activation_name(act), m,
                           [&] { return m.forward(ids); });
  }
}

TEST(NnTransformer, CrossEntropyLossBackwardReachesEveryParameter) {
  Generator g(5);
  TransformerConfig cfg = tiny_config();
  cfg.dtype = DType::F32;
  cfg.init_std = 0.02;
  Transformer m(cfg, g);
  Tensor ids = random_ids(g, 2, 6, 11), targets = random_ids(g, 2, 6, 11);
  Tensor logits = m.forward(ids);
  EXPECT_EQ(logits.shape(), (Shape{2, 6, 11}));
  Tensor loss = cross_entropy(reshape(logits, {-1, 11}), reshape(targets, {-1}));
  EXPECT_NEAR(loss.item(), std::log(11.0), 0.1);  // near-uniform predictions at init
  loss.backward();
  for (auto& [n, p] : m.named_parameters()) {
    ASSERT_TRUE(p.grad().defined()) << n;
    double ss = 0;
    for (double v : p.grad().to_vector<double>()) ss += v * v;
    EXPECT_GT(ss, 0.0) << n;
  }
  EXPECT_THROW(m.forward(random_ids(g, 1, 9, 11)), Error);  // longer than the context
  EXPECT_THROW(m.forward(zeros({1, 3})), Error);            // ids must be I32
}

TEST(NnTransformer, KvCacheDecodingEqualsFullRecomputation) {
  Generator g(6);
  Transformer m(tiny_config(Activation::SwiGLU), g);
  const int64_t B = 2, T = 7;
  Tensor ids = random_ids(g, B, T, 11);
  NoGradGuard ng;
  std::vector<double> full = m.forward(ids).to_vector<double>();
  std::vector<KVCache> caches = m.make_caches();
  std::vector<Tensor> steps{m.forward(slice(ids, 1, 0, 3), caches)};  // a 3-token prompt
  for (int64_t t = 3; t < T; ++t) {
    EXPECT_EQ(caches[0].length(), t);
    steps.push_back(m.forward(slice(ids, 1, t, t + 1), caches));  // then one token at a time
  }
  EXPECT_EQ(caches[1].length(), T);
  std::vector<double> inc = concat(steps, 1).to_vector<double>();
  ASSERT_EQ(inc.size(), full.size());
  for (size_t i = 0; i < full.size(); ++i) ASSERT_NEAR(inc[i], full[i], 1e-12) << "logit " << i;
  EXPECT_THROW(m.forward(slice(ids, 1, 0, 2), caches), Error);  // 7 + 2 > context 8
  std::vector<KVCache> wrong(1);
  EXPECT_THROW(m.forward(ids, wrong), Error);
}

TEST(NnTransformer, F32AndF64ModelsAgree) {
  Generator g32(7), g64(7), gi(8);
  TransformerConfig c64 = tiny_config(), c32 = c64;
  c32.dtype = DType::F32;
  Transformer m32(c32, g32), m64(c64, g64);
  Tensor ids = random_ids(gi, 2, 5, 11);
  std::vector<double> a = m32.forward(ids).to_vector<double>(),
                      b = m64.forward(ids).to_vector<double>();
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-4 * (1 + std::abs(b[i])));
}

namespace {
// A stand-in for an expert layer: y = x·s (a learned scalar gain per layer) with aux loss Σ s².
class ScaleFfn : public FeedForward {
 public:
  explicit ScaleFfn(double s) { gain_ = register_parameter("gain", full({1}, s, DType::F64)); }
  Tensor forward(const Tensor& x) override {
    last_aux_ = sum(mul(gain_, gain_));
    return mul(x, gain_);
  }
  Tensor aux_loss() const override { return last_aux_; }

 private:
  Tensor gain_, last_aux_;
};
}  // namespace

TEST(NnTransformer, FeedForwardFactoryAndAuxLoss) {
  Generator g(9);
  std::vector<int> built;
  Transformer m(tiny_config(), g, [&](int layer) {
    built.push_back(layer);
    return std::make_shared<ScaleFfn>(layer + 2.0);
  });
  EXPECT_EQ(built, (std::vector<int>{0, 1}));
  auto params = m.named_parameters();
  ASSERT_EQ(params[7].first, "layers.0.ffn.gain");
  EXPECT_FALSE(m.aux_loss().defined());  // no forward yet
  Tensor ids = random_ids(g, 1, 4, 11);
  m.forward(ids);
  Tensor aux = m.aux_loss();
  ASSERT_TRUE(aux.defined());
  EXPECT_DOUBLE_EQ(aux.item(), 2.0 * 2.0 + 3.0 * 3.0);
  aux.backward();
  EXPECT_DOUBLE_EQ(params[7].second.grad().item(), 4.0);  // ∂(s²)/∂s at s = 2
  // the dense default has no auxiliary loss
  Transformer dense(tiny_config(), g);
  dense.forward(ids);
  EXPECT_FALSE(dense.aux_loss().defined());
  EXPECT_THROW(Transformer(tiny_config(), g, [](int) { return std::shared_ptr<FeedForward>(); }),
               Error);
}

// Activation hooks (the splice point of sparse autoencoders): a hook sees its site's activation
// and what it returns replaces it; `hidden` is the residual stream after the first blocks.
TEST(NnTransformer, HooksReadAndReplaceActivationsAndHiddenStopsEarly) {
  struct Scale final : ActivationHook {
    double by = 1;
    Tensor seen;
    Tensor apply(const Tensor& x) override {
      seen = x;
      return mul(x, by);
    }
  };
  Generator g(8);
  Transformer m(tiny_config(), g);
  const Tensor ids = random_ids(g, 2, 5, 11);
  NoGradGuard ng;
  const std::vector<double> plain = m.forward(ids).to_vector<double>();
  auto mlp = std::make_shared<Scale>(), resid = std::make_shared<Scale>();
  m.blocks()[0]->set_hook(HookSite::Mlp, mlp);
  m.blocks()[0]->set_hook(HookSite::Resid, resid);
  EXPECT_EQ(m.blocks()[0]->hook(HookSite::Mlp), mlp);
  EXPECT_EQ(m.forward(ids).to_vector<double>(), plain);  // identity hooks change nothing
  ASSERT_TRUE(mlp->seen.defined() && resid->seen.defined());
  EXPECT_EQ(mlp->seen.shape(), (Shape{2, 5, 8}));
  // The residual leaving block 0 is what hidden(ids, 1) returns.
  EXPECT_EQ(m.hidden(ids, 1).to_vector<double>(), resid->seen.to_vector<double>());
  // A replacing hook changes the output; with the hooks removed it is the plain model again.
  mlp->by = 0;  // block 0 without its MLP
  EXPECT_NE(m.forward(ids).to_vector<double>(), plain);
  m.blocks()[0]->set_hook(HookSite::Mlp, nullptr);
  m.blocks()[0]->set_hook(HookSite::Resid, nullptr);
  EXPECT_EQ(m.forward(ids).to_vector<double>(), plain);
  EXPECT_THROW(m.hidden(ids, 0), Error);
  EXPECT_THROW(m.hidden(ids, 3), Error);
  EXPECT_EQ(parse_hook_site("resid"), HookSite::Resid);
  EXPECT_STREQ(hook_site_name(HookSite::Mlp), "mlp");
  EXPECT_THROW(parse_hook_site("attn"), Error);
}
