// `monet sae train`: a sparse autoencoder on one site of a trained model (sae/sae_train.h).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iterator>
#include <nlohmann/json.hpp>

#include "app/command.h"
#include "sae/sae_io.h"
#include "sae/sae_train.h"
#include "train/checkpoint.h"
#include "train/model.h"
#include "train/tokenizer.h"
#include "util/fileio.h"
#include "util/interrupt.h"
#include "util/plot.h"
#include "util/progress.h"
#include "util/timing.h"

namespace monet::app {

namespace fs = std::filesystem;

namespace {

struct SaeArgs {
  std::string ckpt, data, out, site = "mlp", device;
  int layer = 0;
  int64_t features = 0, k = 0;
  double l1 = -1;
  sae::SaeTrainOptions opt;
  GemmArgs gemm;
};

// sae.json: what was trained, on what, and how well; the per-step log for plots.
nlohmann::json sae_json(const SaeArgs& a, const sae::SaeTrainResult& r, double seconds) {
  const sae::SaeOptions& o = r.sae->options();
  nlohmann::json steps = nlohmann::json::array();
  std::transform(
      r.steps.begin(), r.steps.end(), std::back_inserter(steps), [](const sae::SaeStep& s) {
        return nlohmann::json{
            {"step", s.step}, {"loss", s.loss}, {"nmse", s.nmse}, {"l0", s.l0}, {"lr", s.lr}};
      });
  return {{"checkpoint", a.ckpt},
          {"layer", o.layer},
          {"site", nn::hook_site_name(o.site)},
          {"d", o.d},
          {"features", o.features},
          {"activation", sae::activation_name(o.act)},
          {"k", o.k},
          {"l1", o.l1},
          {"steps", r.steps.size()},
          {"train_tokens", r.tokens},
          {"seconds", seconds},
          {"interrupted", r.interrupted},
          {"val",
           {{"tokens", r.val.tokens},
            {"nmse", r.val.nmse},
            {"l0", r.val.l0},
            {"dead", r.val.dead},
            {"dead_fraction", static_cast<double>(r.val.dead) / static_cast<double>(o.features)}}},
          {"log", steps}};
}

std::string sae_markdown(const sae::SaeTrainResult& r, double seconds) {
  const sae::SaeOptions& o = r.sae->options();
  return fmt::format(
      "| layer | site | features | sparsity | steps | train tokens | val NMSE | val L0 | dead "
      "features | time |\n|---|---|---|---|---|---|---|---|---|---|\n"
      "| {} | {} | {} | {} | {} | {} | {:.4f} | {:.1f} | {} ({:.1f}%) | {:.0f} s |\n",
      o.layer, nn::hook_site_name(o.site), o.features, o.sparsity(), r.steps.size(), r.tokens,
      r.val.nmse, r.val.l0, r.val.dead,
      100.0 * static_cast<double>(r.val.dead) / static_cast<double>(o.features), seconds);
}

int run_sae_train(const SaeArgs& a) {
  const auto t0 = std::chrono::steady_clock::now();
  sae::SaeTrainOptions opt = a.opt;
  MONET_CHECK((a.k > 0) != (a.l1 >= 0),
              "sae train: give exactly one of --k (TopK) and --l1 (ReLU with an L1 penalty)");
  opt.sae.act = a.k > 0 ? sae::Activation::TopK : sae::Activation::ReLU;
  opt.sae.k = a.k;
  opt.sae.l1 = a.l1 >= 0 ? a.l1 : 0;
  opt.sae.features = a.features;
  opt.sae.layer = a.layer;
  opt.sae.site = nn::parse_hook_site(a.site);

  Config cfg;
  const RunConfig run = checkpoint_run(a.ckpt, a.device, a.gemm);  // checked first
  auto model = load_model(a.ckpt, &cfg, usable_device(run.device), note_to_stderr);
  const GemmScope gemm(gemm_mode_of(run));
  const std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(a.ckpt);
  const Corpus corpus = Corpus::load(a.data.empty() ? cfg.run.data : a.data, *tokenizer);
  const fs::path out = a.out.empty() ? run_folder(resolve_checkpoint(a.ckpt)) / "sae" /
                                           fmt::format("L{}_{}_F{}_{}", a.layer, a.site, a.features,
                                                       a.k > 0 ? fmt::format("k{}", a.k)
                                                               : fmt::format("l1_{:g}", a.l1))
                                     : fs::path(a.out);
  fmt::print(stderr, "sae: layer {} {}, {} features, {}; {} steps of {} x {} activations\n",
             a.layer, a.site, a.features, opt.sae.sparsity(), opt.steps, opt.batch,
             opt.context > 0 ? opt.context : cfg.model.context);

  Progress bar(opt.steps, 0, stderr);
  InterruptScope interrupt("finishing this step, then saving the SAE");
  sae::SaeTrainResult r = sae::train_sae(
      *model, corpus, opt,
      [&](const sae::SaeStep& s) { bar.step(s.step, s.loss, s.lr, s.tokens, 50); },
      [&] { return interrupt.interrupted(); });
  const double seconds = seconds_since(t0);

  fs::create_directories(out);
  sae::save_sae(out / "sae.safetensors", *r.sae,
                {{"checkpoint", a.ckpt},
                 {"train_tokens", std::to_string(r.tokens)},
                 {"val_nmse", fmt::format("{:.6g}", r.val.nmse)},
                 {"val_l0", fmt::format("{:.6g}", r.val.l0)},
                 {"val_dead", std::to_string(r.val.dead)}});
  write_file_atomic(out / "sae.json", sae_json(a, r, seconds).dump(2) + "\n");
  // The loss plot of training: each batch's NMSE faint, its moving average on top.
  Series nmse{"normalised MSE (train batch)", {}, {}};
  nmse.markers = false, nmse.opacity = 0.3, nmse.style = 0;
  for (const sae::SaeStep& s : r.steps)
    nmse.x.push_back(static_cast<double>(s.step)), nmse.y.push_back(s.nmse);
  Series smooth{"moving average", nmse.x, ema_smooth(nmse.y, 0.9)};
  smooth.markers = false, smooth.style = 0;
  write_file_atomic(
      out / "loss.svg",
      svg_line_plot({nmse, smooth}, {fmt::format("SAE layer {} {}: {} features, {}", a.layer,
                                                 a.site, a.features, opt.sae.sparsity()),
                                     "step", "‖x − x̂‖² / ‖x − x̄‖²", false, true}));
  if (r.interrupted)
    fmt::print(stderr, "sae: interrupted after step {} of {}; the SAE so far is saved\n",
               r.steps.size(), opt.steps);
  fmt::print("{}", sae_markdown(r, seconds));
  fmt::print(stderr, "sae: wrote {}/sae.{{safetensors,json}} and loss.svg\n", out.string());
  return r.interrupted ? kExitInterrupted : 0;
}

}  // namespace

Command add_sae_command(CLI::App& app) {
  auto a = std::make_shared<SaeArgs>();
  CLI::App* sae = app.add_subcommand("sae", "sparse autoencoders on a trained model's activations");
  sae->require_subcommand(1);
  CLI::App* cmd = sae->add_subcommand(
      "train", "train a sparse autoencoder on one layer's activations (the model frozen)");
  cmd->add_option("--ckpt", a->ckpt, "run or checkpoint folder of the model")->required();
  cmd->add_option("--data", a->data, "corpus folder")->default_str("run.data");
  cmd->add_option("--layer", a->layer, "the block whose activations are read (0-based)")
      ->required()
      ->check(at_least(0));
  cmd->add_option("--site", a->site,
                  "mlp: the feed-forward output; resid: the residual stream leaving the block")
      ->check(CLI::IsMember({"mlp", "resid"}))
      ->capture_default_str();
  cmd->add_option("--features", a->features, "dictionary size F")->required()->check(positive());
  auto* k =
      cmd->add_option("--k", a->k, "TopK activation: features kept per token")->check(positive());
  cmd->add_option("--l1", a->l1, "ReLU activation with this L1 coefficient λ")
      ->check(at_least(0))
      ->excludes(k);
  cmd->add_option("--steps", a->opt.steps, "Adam steps")->check(positive())->capture_default_str();
  cmd->add_option("--batch", a->opt.batch, "train windows per step")
      ->check(positive())
      ->capture_default_str();
  cmd->add_option("--context", a->opt.context, "tokens per window (0: the model's context)")
      ->check(at_least(0))
      ->capture_default_str();
  cmd->add_option("--lr", a->opt.lr, "peak learning rate")
      ->check(positive())
      ->capture_default_str();
  cmd->add_option("--warmup", a->opt.warmup, "warm-up steps")
      ->check(at_least(0))
      ->capture_default_str();
  cmd->add_option("--seed", a->opt.seed, "initialisation and windows")->capture_default_str();
  cmd->add_option("--windows", a->opt.eval_windows,
                  "val windows per domain for the final scores (0: all)")
      ->check(at_least(0))
      ->capture_default_str();
  cmd->add_option("--out", a->out, "output folder")
      ->default_str("<run>/sae/L<layer>_<site>_F<features>_k<k> (or _l1_<λ>)");
  add_device_option(cmd, a->device);
  add_gemm_options(cmd, a->gemm, "the checkpoint's run");
  return {sae, [a] { return run_sae_train(*a); }};
}

}  // namespace monet::app
