#include "sae/sae_train.h"

#include <fmt/format.h>

#include <cmath>
#include <numeric>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "nn/optim.h"

namespace monet::sae {

// ---- reading activations ----

class ActivationReader::Recorder final : public nn::ActivationHook {
 public:
  Tensor apply(const Tensor& x) override {
    last = x;
    return x;
  }
  Tensor last;
};

ActivationReader::ActivationReader(nn::Transformer& model, int layer, nn::HookSite site)
    : model_(model), layer_(layer), site_(site), recorder_(std::make_shared<Recorder>()) {
  const int64_t n = model.config().n_layers;
  MONET_CHECK(layer >= 0 && layer < n, "sae: --layer {} is outside the model's {} layers (0-{})",
              layer, n, n - 1);
  nn::Block& b = *model.blocks()[static_cast<size_t>(layer)];
  previous_ = b.hook(site);  // put back when the reader goes
  b.set_hook(site, recorder_);
}

ActivationReader::~ActivationReader() {
  model_.blocks()[static_cast<size_t>(layer_)]->set_hook(site_, previous_);
}

Tensor ActivationReader::read(const Tensor& ids) {
  NoGradGuard ng;
  const bool was_training = model_.is_training();
  model_.eval();
  recorder_->last = Tensor();
  model_.hidden(ids, layer_ + 1);
  if (was_training) model_.train();
  MONET_CHECK(recorder_->last.defined(), "sae: layer {} {} produced no activation", layer_,
              nn::hook_site_name(site_));
  Tensor x = reshape(recorder_->last, {-1, recorder_->last.size(-1)}).contiguous();
  recorder_->last = Tensor();
  return x;
}

// ---- scores ----

SaeScores score_sae(SparseAutoencoder& sae, ActivationReader& reader,
                    const std::vector<Domain>& domains, int64_t batch, int64_t context,
                    int64_t windows) {
  NoGradGuard ng;
  const int64_t d = sae.options().d, F = sae.options().features;
  const bool error_term = sae.error_term();
  sae.set_error_term(false);
  SaeScores s;
  s.fires.assign(static_cast<size_t>(F), 0);
  std::vector<double> sum_x(static_cast<size_t>(d), 0.0);
  double sum_xx = 0, sum_err = 0, active = 0;
  for (const Domain& dom : domains) {
    for (const EvalBatch& b : eval_batches(dom.val, batch, context, windows)) {
      const Tensor x = reader.read(b.inputs);
      const Tensor x_hat = sae.apply(x);
      const std::vector<float> xv = x.to(DType::F32).to_vector<float>();
      const std::vector<float> hv = x_hat.to(DType::F32).to_vector<float>();
      for (size_t i = 0; i < xv.size(); ++i) {
        const double e = static_cast<double>(xv[i]) - hv[i];
        sum_err += e * e;
        sum_xx += static_cast<double>(xv[i]) * xv[i];
        sum_x[i % static_cast<size_t>(d)] += xv[i];
      }
      const moe::TokenScores sc = sae.expert_scores();
      for (int32_t f : sc.expert) ++s.fires[static_cast<size_t>(f)];
      active += static_cast<double>(sc.expert.size());
      s.tokens += sc.tokens();
    }
  }
  sae.set_error_term(error_term);
  MONET_CHECK(s.tokens > 0, "sae: no validation tokens to score on");
  const double n = static_cast<double>(s.tokens);
  const double mean_sq =
      std::accumulate(sum_x.begin(), sum_x.end(), 0.0,
                      [n](double acc, double v) { return acc + (v / n) * (v / n); });
  const double var = sum_xx - n * mean_sq;  // Σ‖x − x̄‖²
  s.nmse = var > 0 ? sum_err / var : 0.0;
  s.l0 = active / n;
  for (int64_t f : s.fires) s.dead += f == 0;
  return s;
}

// ---- training ----

SaeTrainResult train_sae(nn::Transformer& model, const Corpus& corpus, const SaeTrainOptions& opt,
                         const std::function<void(const SaeStep&)>& on_step,
                         const std::function<bool()>& stop) {
  const nn::TransformerConfig& cfg = model.config();
  const int64_t T = opt.context > 0 ? opt.context : cfg.context;
  MONET_CHECK(T <= cfg.context, "sae: context {} exceeds the model's {}", T, cfg.context);
  MONET_CHECK(opt.steps > opt.warmup && opt.warmup >= 0,
              "sae: --steps {} must exceed the warm-up of {} steps", opt.steps, opt.warmup);
  MONET_CHECK(opt.batch > 0 && opt.lr > 0, "sae: batch {} and lr {} must be positive", opt.batch,
              opt.lr);
  SaeOptions so = opt.sae;
  so.d = cfg.d_model;
  so.validate();
  ActivationReader reader(model, so.layer, so.site);
  Generator gen(opt.seed);
  nn::ParamOptions p;
  p.device = cfg.device;
  SaeTrainResult r;
  r.sae = std::make_shared<SparseAutoencoder>(so, gen, p);
  SparseAutoencoder& sae = *r.sae;
  Batcher batcher(corpus.train_stream(), opt.seed + 1);

  nn::AdamWOptions ao;
  ao.lr = opt.lr;
  ao.weight_decay = 0;  // Adam: the decoder is normalised, the code penalised by the loss
  nn::AdamW adam(sae.named_parameters(), ao);
  const nn::LrSchedule sched{opt.lr, opt.lr / 10, opt.warmup, opt.steps};

  for (int64_t step = 0; step < opt.steps; ++step) {
    if (stop && stop()) {
      r.interrupted = true;
      break;
    }
    const Tensor x = reader.read(batcher.next(opt.batch, T, cfg.device).first);
    if (step == 0) {  // b_dec starts at the data's mean, so the first codes see x − x̄
      NoGradGuard ng;
      copy_(sae.b_dec, mean(x, {0}));
    }
    adam.set_lr(nn::scheduled_lr(sched, step));
    adam.zero_grad();
    const Code c = sae.encode(x);
    const SaeLoss l = sae_loss(x, c, sae.decode(c), so);
    const double loss = l.loss.item();
    MONET_CHECK(std::isfinite(loss), "sae: the loss is {} at step {}; try a smaller --lr", loss,
                step + 1);
    l.loss.backward();
    adam.step();
    sae.normalize_decoder();
    r.steps.push_back({step + 1, loss, l.nmse, l.l0, adam.lr(), x.size(0)});
    r.tokens += x.size(0);
    if (on_step) on_step(r.steps.back());
  }
  r.val = score_sae(sae, reader, corpus.domains(), opt.batch, T, opt.eval_windows);
  return r;
}

}  // namespace monet::sae
