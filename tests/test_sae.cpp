// Sparse autoencoders (sae/): the three equations gradient-checked, the unit-norm decoder kept by
// training, the spliced model against the plain one, exact feature removal against a reference
// that recomputes the reconstruction in plain loops, the features as experts feeding the
// selection rule, and the SAE file's round trip and bad inputs.
#include <gtest/gtest.h>

#include <cmath>

#include "core/autograd.h"
#include "core/ops.h"
#include "eval/experts.h"
#include "eval/mask.h"
#include "gradcheck.h"
#include "interp_fixtures.h"
#include "sae/sae.h"
#include "sae/sae_io.h"
#include "sae/sae_train.h"
#include "test_train_util.h"
#include "train/evaluate.h"
#include "util/fileio.h"

using namespace monet;
using namespace monet::sae;
using namespace monet::testing::interp_fixtures;
using monet::testing::expect_gradcheck;
using monet::testing::TempDir;
using monet::testing::ThrowsWith;

namespace {

const char* const kDense = R"({"kind": "dense"})";

SaeOptions topk_options(int64_t d, int64_t F, int64_t k) {
  SaeOptions o;
  o.d = d, o.features = F, o.act = Activation::TopK, o.k = k;
  return o;
}
SaeOptions relu_options(int64_t d, int64_t F, double l1) {
  SaeOptions o;
  o.d = d, o.features = F, o.act = Activation::ReLU, o.l1 = l1;
  return o;
}

// A trained-looking SAE: random encoder and biases (not the tied start), unit decoder rows.
std::shared_ptr<SparseAutoencoder> random_sae(const SaeOptions& o, uint64_t seed) {
  Generator g(seed);
  auto s = std::make_shared<SparseAutoencoder>(o, g);
  NoGradGuard ng;
  copy_(s->W_enc, randn({o.features, o.d}, g));
  copy_(s->b_enc, mul(randn({o.features}, g), 0.3));
  copy_(s->b_dec, mul(randn({o.d}, g), 0.3));
  return s;
}

// An SAE that reproduces its input: F = d, identity encoder and decoder, no sparsity, and
// b_dec = −50 so that every pre-activation x + 50 is positive (x̂ = (x + 50) − 50).
std::shared_ptr<SparseAutoencoder> identity_sae(int layer, nn::HookSite site) {
  SaeOptions o = relu_options(16, 16, 0.0);
  o.layer = layer, o.site = site;
  Generator g(1);
  auto s = std::make_shared<SparseAutoencoder>(o, g);
  NoGradGuard ng;
  std::vector<float> eye(16 * 16, 0.0f);
  for (int i = 0; i < 16; ++i) eye[static_cast<size_t>(i * 17)] = 1.0f;
  copy_(s->W_enc, from_vector(eye, {16, 16}));
  copy_(s->W_dec, from_vector(eye, {16, 16}));
  fill_(s->b_dec, -50.0);
  return s;
}

// The reference: z by the definition in double, features in `removed` zeroed, x̂ = Σ z_f W_dec[f]
// + b_dec, or with the error term x − Σ_{f removed} z_f W_dec[f].
std::vector<double> reference_apply(const SparseAutoencoder& s, const std::vector<float>& x,
                                    const std::vector<int64_t>& removed, bool error_term,
                                    std::vector<std::vector<double>>* codes = nullptr) {
  const SaeOptions& o = s.options();
  const auto We = s.W_enc.to_vector<float>(), be = s.b_enc.to_vector<float>(),
             Wd = s.W_dec.to_vector<float>(), bd = s.b_dec.to_vector<float>();
  const size_t d = static_cast<size_t>(o.d), F = static_cast<size_t>(o.features), n = x.size() / d;
  std::vector<double> out(x.size());
  for (size_t t = 0; t < n; ++t) {
    std::vector<double> pre(F);
    for (size_t f = 0; f < F; ++f) {
      double a = be[f];
      for (size_t i = 0; i < d; ++i) a += We[f * d + i] * (x[t * d + i] - bd[i]);
      pre[f] = a;
    }
    std::vector<double> z(F, 0.0);
    if (o.act == Activation::ReLU) {
      for (size_t f = 0; f < F; ++f) z[f] = std::max(pre[f], 0.0);
    } else {  // the k largest, ties to the lower feature
      std::vector<size_t> order(F);
      for (size_t f = 0; f < F; ++f) order[f] = f;
      std::stable_sort(order.begin(), order.end(),
                       [&](size_t a, size_t b) { return pre[a] > pre[b]; });
      for (int64_t j = 0; j < o.k; ++j) z[order[j]] = std::max(pre[order[j]], 0.0);
    }
    if (codes) codes->push_back(z);
    std::vector<double> zr = z;
    for (int64_t f : removed) zr[static_cast<size_t>(f)] = 0;
    for (size_t i = 0; i < d; ++i) {
      double full = bd[i], kept = bd[i];
      for (size_t f = 0; f < F; ++f) full += z[f] * Wd[f * d + i], kept += zr[f] * Wd[f * d + i];
      out[t * d + i] = error_term ? x[t * d + i] - (full - kept) : kept;
    }
  }
  return out;
}

}  // namespace

// ---- the equations ----

TEST(Sae, EncodeDecodeAndLossGradientsMatchFiniteDifferences) {
  Generator g(5);
  const int64_t n = 6, d = 5, F = 9;
  // Inputs: x, W_enc, b_enc, W_dec, b_dec (x is data: its gradient is checked too, as a check of
  // the whole chain).
  const std::vector<Tensor> in = {randn({n, d}, g), randn({F, d}, g), randn({F}, g),
                                  randn({F, d}, g), randn({d}, g)};
  for (const SaeOptions& o : {topk_options(d, F, 3), relu_options(d, F, 0.1)}) {
    const std::string name = o.sparsity();
    expect_gradcheck(
        "sae encode " + name,
        [&](const std::vector<Tensor>& t) { return sae_encode(t[0], t[1], t[2], t[4], o).value; },
        in);
    expect_gradcheck(
        "sae decode " + name,
        [&](const std::vector<Tensor>& t) {
          return sae_decode(sae_encode(t[0], t[1], t[2], t[4], o), t[3], t[4]);
        },
        in);
    const Tensor keep = from_vector<double>({1, 0, 1, 1, 0, 1, 1, 1, 0}, {F});
    expect_gradcheck(
        "sae decode, features removed " + name,
        [&](const std::vector<Tensor>& t) {
          return sae_decode(sae_encode(t[0], t[1], t[2], t[4], o), t[3], t[4], keep);
        },
        in);
    // The loss's normaliser is a constant of the batch (not differentiated), so the loss is
    // checked against the parameters only, with x fixed.
    const Tensor x = in[0].to(DType::F64);
    expect_gradcheck("sae loss " + name,
                     [&](const std::vector<Tensor>& t) {
                       const Code c = sae_encode(x, t[0], t[1], t[3], o);
                       return sae_loss(x, c, sae_decode(c, t[2], t[3]), o).loss;
                     },
                     {in[1], in[2], in[3], in[4]});
  }
}

TEST(Sae, LossIsTheNormalisedMsePlusTheScaledL1) {
  Generator g(2);
  const SaeOptions o = relu_options(4, 6, 0.5);
  auto s = random_sae(o, 3);
  const Tensor x = randn({10, 4}, g);
  const Code c = s->encode(x);
  const Tensor xh = s->decode(c);
  const SaeLoss l = sae_loss(x, c, xh, o);
  const auto xv = x.to_vector<float>(), hv = xh.to_vector<float>(), zv = c.value.to_vector<float>();
  double err = 0, var = 0, z1 = 0, l0 = 0;
  for (int i = 0; i < 4; ++i) {
    double m = 0;
    for (int t = 0; t < 10; ++t) m += xv[t * 4 + i] / 10.0;
    for (int t = 0; t < 10; ++t) var += (xv[t * 4 + i] - m) * (xv[t * 4 + i] - m);
  }
  for (size_t i = 0; i < xv.size(); ++i) err += (xv[i] - hv[i]) * (xv[i] - hv[i]);
  for (float z : zv) z1 += z, l0 += z > 0;
  EXPECT_NEAR(l.nmse, err / var, 1e-5);
  EXPECT_NEAR(l.loss.item(), err / var + 0.5 * (z1 / 10) / std::sqrt(var / 10), 1e-5);
  EXPECT_NEAR(l.l0, l0 / 10, 1e-12);
}

// ---- removal and the splice ----

TEST(Sae, RemovalEqualsTheReferenceThatRecomputesTheReconstruction) {
  Generator g(9);
  for (const SaeOptions& o : {topk_options(6, 12, 4), relu_options(6, 12, 0.0)}) {
    auto s = random_sae(o, 4);
    const Tensor x = randn({2, 3, 6}, g);  // [..., d]: apply flattens and restores the shape
    const std::vector<float> xv = x.to_vector<float>();
    for (bool error_term : {false, true}) {
      for (const std::vector<int64_t>& removed :
           {std::vector<int64_t>{}, std::vector<int64_t>{0, 3, 7, 11}}) {
        s->set_error_term(error_term);
        s->remove_experts(removed);
        const Tensor y = s->apply(x);
        ASSERT_EQ(y.shape(), x.shape());
        const std::vector<float> got = y.to_vector<float>();
        const std::vector<double> want = reference_apply(*s, xv, removed, error_term);
        for (size_t i = 0; i < got.size(); ++i)
          EXPECT_NEAR(got[i], want[i], 1e-5) << o.sparsity() << " error term " << error_term
                                             << " removed " << removed.size() << " at " << i;
        if (error_term && removed.empty()) {
          EXPECT_EQ(got, xv);  // x̂ + (x − x̂) is x exactly
        }
      }
    }
    // The scores are the code: every feature > 0, with its value, in increasing order.
    std::vector<std::vector<double>> codes;
    s->remove_experts({});
    s->apply(x);
    reference_apply(*s, xv, {}, false, &codes);
    const moe::TokenScores sc = s->expert_scores();
    ASSERT_EQ(sc.tokens(), 6);
    for (int64_t t = 0; t < 6; ++t) {
      std::vector<int32_t> want;
      for (size_t f = 0; f < codes[t].size(); ++f)
        if (codes[t][f] > 0) want.push_back(static_cast<int32_t>(f));
      const std::vector<int32_t> got(sc.expert.begin() + sc.begin[t],
                                     sc.expert.begin() + sc.begin[t + 1]);
      EXPECT_EQ(got, want) << o.sparsity() << " token " << t;
      for (int64_t j = sc.begin[t]; j < sc.begin[t + 1]; ++j)
        EXPECT_NEAR(sc.score[j], codes[t][sc.expert[j]], 1e-5);
    }
    EXPECT_TRUE(ThrowsWith([&] { s->remove_experts({12}); }, {"feature 12", "[0, 12)"}));
  }
}

// An SAE that reproduces its input (F = d, identity weights, no sparsity; b_dec = −c so that every
// pre-activation x + c is positive) spliced at either site leaves the LM loss as it was.
TEST(Sae, SplicedIdentitySaeLeavesTheLossUnchanged) {
  const std::vector<Domain> domains = tiny_domains();
  auto model = tiny_model(kDense);
  const auto plain = evaluate(*model, domains, 4, kContext, 0);
  for (nn::HookSite site : {nn::HookSite::Mlp, nn::HookSite::Resid}) {
    auto s = identity_sae(1, site);
    model->blocks()[1]->set_hook(site, s);
    const auto spliced = evaluate(*model, domains, 4, kContext, 0);
    for (size_t i = 0; i < plain.size(); ++i)
      EXPECT_NEAR(spliced[i].loss, plain[i].loss, 1e-5) << nn::hook_site_name(site);
    // A real reconstruction changes it; with the error term added back it is the plain loss.
    fill_(s->b_dec, 0.3);
    const double lossy = evaluate(*model, domains, 4, kContext, 0).back().loss;
    EXPECT_GT(std::abs(lossy - plain.back().loss), 1e-3);
    s->set_error_term(true);
    EXPECT_DOUBLE_EQ(evaluate(*model, domains, 4, kContext, 0).back().loss, plain.back().loss);
    model->blocks()[1]->set_hook(site, nullptr);
  }
}

// ---- training ----

TEST(Sae, TrainingKeepsDecoderRowsUnitNormAndLowersTheLoss) {
  const std::vector<Domain> domains = tiny_domains();
  auto model = tiny_model(kDense);
  TempDir t("sae_train");
  for (const Domain& d : domains) {
    write_file_atomic(t / (d.name + ".train.txt"), byte_tokenizer().decode(d.train));
    write_file_atomic(t / (d.name + ".val.txt"), byte_tokenizer().decode(d.val));
  }
  const Corpus corpus = Corpus::load(t.path(), byte_tokenizer());
  for (const SaeOptions& base : {topk_options(0, 32, 4), relu_options(0, 32, 0.01)}) {
    SaeTrainOptions opt;
    opt.sae = base;
    opt.sae.layer = 1;
    opt.steps = 100;
    opt.batch = 4;
    opt.warmup = 5;
    opt.lr = 3e-3;
    int64_t calls = 0;
    const SaeTrainResult r = train_sae(*model, corpus, opt, [&](const SaeStep&) { ++calls; });
    EXPECT_EQ(calls, 100);
    ASSERT_EQ(r.steps.size(), 100u);
    double first = 0, last = 0;  // mean normalised MSE of the first and the last ten steps
    for (int i = 0; i < 10; ++i) first += r.steps[i].nmse / 10, last += r.steps[90 + i].nmse / 10;
    EXPECT_LT(last, 0.8 * first) << base.sparsity();
    const auto norms = sqrt(sum(mul(r.sae->W_dec, r.sae->W_dec), {1})).to_vector<float>();
    for (float v : norms) EXPECT_NEAR(v, 1.0f, 1e-5f);
    if (base.act == Activation::TopK) {
      EXPECT_LE(r.val.l0, 4.0);
    }
    EXPECT_GT(r.val.tokens, 0);
    EXPECT_EQ(r.val.fires.size(), static_cast<size_t>(base.features));
    // The reader left no hook behind.
    EXPECT_EQ(model->blocks()[1]->hook(nn::HookSite::Mlp), nullptr);
  }
}

// score_sae against an SAE whose firing is known: with W_enc = 0 each pre-activation is b_enc, so
// the two features with b_enc = +1 fire on every token and the six with -1 never do.
TEST(Sae, DeadFeaturesAreTheOnesThatNeverFire) {
  const std::vector<Domain> domains = tiny_domains();
  auto model = tiny_model(kDense);
  SaeOptions o = relu_options(16, 8, 0.0);
  o.layer = 1;
  Generator g(3);
  SparseAutoencoder s(o, g);
  {
    NoGradGuard ng;
    fill_(s.W_enc, 0.0);
    copy_(s.b_enc, from_vector(std::vector<float>{-1, 1, -1, -1, 1, -1, -1, -1}, {8}));
  }
  ActivationReader reader(*model, 1, nn::HookSite::Mlp);
  const SaeScores sc = score_sae(s, reader, domains, 4, kContext, 0);
  ASSERT_GT(sc.tokens, 0);
  EXPECT_EQ(sc.dead, 6);
  for (int64_t f = 0; f < 8; ++f)
    EXPECT_EQ(sc.fires[static_cast<size_t>(f)], f == 1 || f == 4 ? sc.tokens : 0) << f;
  EXPECT_DOUBLE_EQ(sc.l0, 2.0);
}

// ---- features as experts ----

// Spliced into a model, the SAE is an expert site whose routing probabilities are the mean codes
// per domain, and the selection rule picks from them as from any layer's.
TEST(Sae, FeaturesAreExpertsForTheSelectionRuleAndRemoval) {
  const std::vector<Domain> domains = tiny_domains();
  auto model = tiny_model(kDense);
  SaeOptions o = topk_options(16, 24, 3);
  o.layer = 0;
  auto s = random_sae(o, 6);
  model->blocks()[0]->set_hook(nn::HookSite::Mlp, s);
  interp::ExpertModel em(*model, "dense + SAE");
  ASSERT_EQ(em.sites().size(), 1u);
  EXPECT_EQ(em.sites()[0].name, "layer 0 mlp");
  EXPECT_EQ(em.sites()[0].experts, 24);
  interp::CollectOptions co;
  co.batch = 4;
  co.top_k = 0;
  const auto prob = interp::collect_expert_stats(em, domains, co).sites[0].probabilities();
  // The reference: the codes of the site's activations, token by token.
  std::vector<std::vector<double>> ref(domains.size(), std::vector<double>(24, 0.0));
  {
    model->blocks()[0]->set_hook(nn::HookSite::Mlp, nullptr);
    ActivationReader reader(*model, 0, nn::HookSite::Mlp);
    for (size_t d = 0; d < domains.size(); ++d) {
      int64_t tokens = 0;
      for (const EvalBatch& b : eval_batches(domains[d].val, 4, kContext, 0)) {
        std::vector<std::vector<double>> codes;
        reference_apply(*s, reader.read(b.inputs).to_vector<float>(), {}, false, &codes);
        const std::vector<int32_t> tg = b.targets.to_vector<int32_t>();
        for (size_t t = 0; t < codes.size(); ++t) {
          if (tg[t] == kIgnoreTarget) continue;  // as collect: scored positions only
          ++tokens;
          for (size_t f = 0; f < 24; ++f) ref[d][f] += codes[t][f];
        }
      }
      for (double& v : ref[d]) v /= static_cast<double>(tokens);
    }
  }
  model->blocks()[0]->set_hook(nn::HookSite::Mlp, s);
  for (size_t d = 0; d < domains.size(); ++d)
    for (size_t f = 0; f < 24; ++f) EXPECT_NEAR(prob[d][f], ref[d][f], 1e-4) << d << " " << f;
  const interp::SelectionRule rule{1.0};  // each used feature goes to its top domain
  for (size_t d = 0; d < domains.size(); ++d)
    EXPECT_EQ(interp::specialised_experts(prob, d, rule),
              interp::specialised_experts(ref, d, rule));
  // Removal through the expert view is the SAE's own: each done alone from the whole model (the
  // two were once compared after both had been applied, one model evaluated twice).
  const std::vector<int64_t> chosen = interp::specialised_experts(prob, 0, rule);
  ASSERT_FALSE(chosen.empty()) << "the test needs a specialised feature";
  auto loss = [&] { return evaluate(*model, domains, 4, kContext, 0).back().loss; };
  const double whole = loss();
  em.remove(0, chosen);
  const double through_view = loss();
  em.restore();
  EXPECT_DOUBLE_EQ(loss(), whole);  // restored
  EXPECT_NE(through_view, whole);   // the removal changed the model
  s->remove_experts(chosen);        // the SAE's own removal, alone
  EXPECT_DOUBLE_EQ(loss(), through_view);
  s->remove_experts({});
  EXPECT_DOUBLE_EQ(loss(), whole);
}

// ---- files ----

TEST(Sae, FileRoundTripsAndBadFilesEndWithOneLineNamingThem) {
  TempDir t("sae_file");
  SaeOptions o = topk_options(16, 8, 2);
  o.layer = 1, o.site = nn::HookSite::Resid;
  auto s = random_sae(o, 2);
  save_sae(t / "a.safetensors", *s, {{"checkpoint", "somewhere"}});
  const LoadedSae l = load_sae(t / "a.safetensors");
  EXPECT_EQ(l.metadata.at("checkpoint"), "somewhere");
  EXPECT_EQ(l.sae->options().layer, 1);
  EXPECT_EQ(l.sae->options().site, nn::HookSite::Resid);
  EXPECT_EQ(l.sae->options().k, 2);
  for (const char* name : {"W_enc", "b_enc", "W_dec", "b_dec"}) {
    Tensor a, b;
    for (const auto& [n, v] : s->named_parameters())
      if (n == name) a = v;
    for (const auto& [n, v] : l.sae->named_parameters())
      if (n == name) b = v;
    EXPECT_EQ(a.to_vector<float>(), b.to_vector<float>()) << name;
  }
  auto model = tiny_model(kDense);
  const std::string file = (t / "a.safetensors").string();
  EXPECT_EQ(splice_saes(*model, {file}, false).size(), 1u);
  EXPECT_NE(model->blocks()[1]->hook(nn::HookSite::Resid), nullptr);
  EXPECT_TRUE(ThrowsWith(
      [&] {
        splice_saes(*model, {file, file}, false);
      },
      {file, "second SAE on layer 1 resid"}));
  // Wrong layer, wrong width, wrong contents.
  SaeOptions far = o;
  far.layer = 5;
  save_sae(t / "far.safetensors", *random_sae(far, 1));
  EXPECT_TRUE(ThrowsWith(
      [&] { splice_saes(*tiny_model(kDense), {(t / "far.safetensors").string()}, false); },
      {"far.safetensors", "layer 5", "2 layers"}));
  SaeOptions wide = o;
  wide.d = 8;
  save_sae(t / "wide.safetensors", *random_sae(wide, 1));
  EXPECT_TRUE(ThrowsWith(
      [&] { splice_saes(*tiny_model(kDense), {(t / "wide.safetensors").string()}, false); },
      {"wide.safetensors", "d = 8", "d_model is 16"}));
  save_safetensors(t / "not.safetensors", {{"W_enc", zeros({8, 16})}}, {{"format", "monet-cpp"}});
  EXPECT_TRUE(ThrowsWith([&] { load_sae(t / "not.safetensors"); }, {"not.safetensors", "format"}));
  Metadata m = load_safetensors(t / "a.safetensors").metadata;
  save_safetensors(t / "short.safetensors", {{"W_enc", zeros({8, 16})}}, m);
  EXPECT_TRUE(
      ThrowsWith([&] { load_sae(t / "short.safetensors"); }, {"short.safetensors", "b_enc"}));
  save_safetensors(t / "shape.safetensors",
                   {{"W_enc", zeros({8, 16})},
                    {"b_enc", zeros({8})},
                    {"W_dec", zeros({8, 15})},
                    {"b_dec", zeros({16})}},
                   m);
  EXPECT_TRUE(ThrowsWith([&] { load_sae(t / "shape.safetensors"); }, {"W_dec", "[8, 16]"}));
  m["k"] = "lots";
  save_safetensors(t / "meta.safetensors", {}, m);
  EXPECT_TRUE(ThrowsWith([&] { load_sae(t / "meta.safetensors"); }, {"'k'", "lots"}));
  m["k"] = "9";
  save_safetensors(t / "k.safetensors", {}, m);
  EXPECT_TRUE(ThrowsWith([&] { load_sae(t / "k.safetensors"); }, {"k.safetensors", "--k"}));
}

// The val scores against sums written out here: an SAE that fires nothing predicts b_dec = 0, so
// its NMSE is Σ‖x‖² / Σ‖x − x̄‖², every feature is dead and L0 is 0; the identity SAE has NMSE ≈ 0
// and every feature alive on every token.
TEST(Sae, ScoresAreTheNormalisedMseL0AndDeadFeaturesOverTheValTokens) {
  const std::vector<Domain> domains = tiny_domains();
  auto model = tiny_model(kDense);
  ActivationReader reader(*model, 1, nn::HookSite::Resid);
  double xx = 0, n = 0;
  std::vector<double> sx(16, 0.0);
  for (const Domain& d : domains)
    for (const EvalBatch& b : eval_batches(d.val, 4, kContext, 0)) {
      const std::vector<float> x = reader.read(b.inputs).to_vector<float>();
      for (size_t i = 0; i < x.size(); ++i) xx += x[i] * x[i], sx[i % 16] += x[i];
      n += static_cast<double>(x.size()) / 16;
    }
  double var = xx;
  for (double v : sx) var -= v * v / n;
  Generator g(1);
  SaeOptions o = relu_options(16, 16, 0.0);
  o.layer = 1, o.site = nn::HookSite::Resid;
  SparseAutoencoder silent(o, g);
  fill_(silent.b_enc, -1e9);
  const SaeScores s = score_sae(silent, reader, domains, 4, kContext, 0);
  EXPECT_EQ(s.tokens, static_cast<int64_t>(n));
  EXPECT_NEAR(s.nmse, xx / var, 1e-6 * xx / var);
  EXPECT_EQ(s.l0, 0.0);
  EXPECT_EQ(s.dead, 16);
  const SaeScores id =
      score_sae(*identity_sae(1, nn::HookSite::Resid), reader, domains, 4, kContext, 0);
  EXPECT_LT(id.nmse, 1e-8);
  EXPECT_EQ(id.l0, 16.0);
  EXPECT_EQ(id.dead, 0);
}
