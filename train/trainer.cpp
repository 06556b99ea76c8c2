#include "train/trainer.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "core/ops.h"
#include "moe/registry.h"
#include "nn/optim.h"
#include "train/checkpoint.h"
#include "train/model.h"
#include "train/tokenizer.h"
#include "train/train_data.h"
#include "util/fileio.h"
#include "util/interrupt.h"
#include "util/plot.h"
#include "util/progress.h"

namespace monet {

namespace fs = std::filesystem;
using nlohmann::json;

std::unique_ptr<nn::Optimizer> make_optimizer(const OptimConfig& o, const nn::NamedTensors& params) {
  if (o.name == "sgd") return std::make_unique<nn::SGD>(params, nn::SGDOptions{o.lr, 0.0, o.weight_decay});
  nn::AdamWOptions a;
  a.lr = o.lr;
  a.beta1 = o.beta1;
  a.beta2 = o.beta2;
  a.eps = o.eps;
  a.weight_decay = o.weight_decay;
  return std::make_unique<nn::AdamW>(params, a);
}

StepResult train_step(nn::Transformer& model, nn::Optimizer& optimizer,
                      const std::vector<Batch>& batches, double grad_clip, int64_t step,
                      const std::string& stop_note, bool train_aux) {
  MONET_CHECK(!batches.empty(), "train_step: no batch");
  const double scale = 1.0 / static_cast<double>(batches.size());
  StepResult r;
  optimizer.zero_grad();
  for (const auto& [x, y] : batches) {  // gradients add up over the micro-batches
    Tensor lm = cross_entropy(model.forward(x), y);
    Tensor aux = model.aux_loss();
    Tensor loss = aux.defined() && train_aux ? add(lm, aux) : lm;
    const double lm_value = lm.item(), aux_value = aux.defined() ? aux.item() : 0.0;
    MONET_CHECK(std::isfinite(lm_value) && std::isfinite(aux_value),
                "training stopped at step {}: the loss is {} (aux {}); {}", step + 1, lm_value,
                aux_value, stop_note);
    r.lm += scale * lm_value;
    r.aux += scale * aux_value;
    r.has_aux = aux.defined();
    (batches.size() == 1 ? loss : mul(loss, scale)).backward();
  }
  r.grad_norm = nn::clip_grad_norm(optimizer.params(), grad_clip > 0 ? grad_clip : INFINITY);
  MONET_CHECK(std::isfinite(r.grad_norm), "training stopped at step {}: the gradient norm is {}; {}",
              step + 1, r.grad_norm, stop_note);
  optimizer.step();
  return r;
}

StepResult train_step(nn::Transformer& model, nn::Optimizer& optimizer, const Tensor& inputs,
                      const Tensor& targets, double grad_clip, int64_t step,
                      const std::string& stop_note, bool train_aux) {
  return train_step(model, optimizer, {{inputs, targets}}, grad_clip, step, stop_note, train_aux);
}

namespace {

// The log keeps one JSON object per line; on resume, lines after the checkpoint's step go.
void truncate_log(const fs::path& log, int64_t step) {
  if (!fs::exists(log)) return;
  std::ifstream in(log);
  std::string line, kept;
  while (std::getline(in, line)) {
    json j = json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.value("step", int64_t{0}) <= step) kept += line + "\n";
  }
  write_file_atomic(log, kept);
}

std::string eval_line(int64_t step, const std::vector<DomainEval>& ev) {
  std::string s = fmt::format("eval @ step {}:", step);
  for (const DomainEval& e : ev) s += fmt::format("  {} {:.3f} bpb", e.domain, e.bpb);
  return s;
}

json eval_log_line(int64_t step, const std::vector<DomainEval>& ev) {
  json j = {{"step", step}, {"eval", json::object()}};
  for (const DomainEval& e : ev) j["eval"][e.domain] = {{"loss", e.loss}, {"bpb", e.bpb}, {"tokens", e.tokens}};
  return j;
}

// The raw train loss (one point a step, faint, no markers), its smoothed version in the same
// colour, and the validation loss at each evaluation (markers, so that a single one shows).
void write_loss_plot(const fs::path& log, const fs::path& svg) {
  Series raw{"train loss", {}, {}}, val{"val loss (all)", {}, {}};
  std::ifstream in(log);
  std::string line;
  while (std::getline(in, line)) {
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded()) continue;
    const double step = j.value("step", 0.0);
    if (j.contains("loss")) raw.x.push_back(step), raw.y.push_back(j["loss"].get<double>());
    if (j.contains("eval") && j["eval"].contains("all"))
      val.x.push_back(step), val.y.push_back(j["eval"]["all"]["loss"].get<double>());
  }
  // TensorBoard's debiased EMA (util/plot.h). Its weight makes the average's memory,
  // 1 / (1 - weight) points, 1% of the run and at least 5 points (0.8 up to 500 steps, 0.95 at
  // 2000), so that it spans the same share of the axis however long the run; 5% lagged visibly
  // behind the first steps' fast drop. Rounded to the 3 digits the legend shows.
  const double memory = std::max(5.0, static_cast<double>(raw.y.size()) / 100);
  const double weight = std::round((1 - 1 / memory) * 1000) / 1000;
  Series ema{fmt::format("train loss (EMA {})", weight), raw.x, ema_smooth(raw.y, weight)};
  raw.markers = ema.markers = false;
  raw.opacity = 0.3;
  raw.style = ema.style = 0;
  val.style = 1;
  write_file_atomic(
      svg, svg_line_plot({raw, ema, val}, {"Loss", "step", "nats per token", false, false}));
}

}  // namespace

Trainable trainable_parameters(nn::Module& model, const Config& cfg) {
  const std::vector<moe::ParamGroup> frozen = moe::parse_freeze(cfg.finetune.freeze);
  const moe::FfnKind& kind = moe::ffn_kind(cfg.model.ffn.kind);
  Trainable t;
  std::map<moe::ParamGroup, int64_t> frozen_count;
  int64_t total = 0, trained = 0;
  for (auto& [name, p] : model.named_parameters()) {
    const moe::ParamGroup g = moe::param_group(name, kind);
    total += p.numel();
    if (std::find(frozen.begin(), frozen.end(), g) != frozen.end()) {
      p.requires_grad_(false);
      frozen_count[g] += p.numel();
    } else {
      t.params.emplace_back(name, p);
      trained += p.numel();
    }
  }
  std::vector<std::string> parts;
  for (moe::ParamGroup g : frozen) {
    MONET_CHECK(frozen_count[g] > 0,
                "config key 'finetune.freeze' = '{}': ffn kind '{}' has no {} parameters",
                cfg.finetune.freeze, kind.name, moe::param_group_name(g));
    parts.push_back(fmt::format("{} ({})", moe::param_group_name(g), frozen_count[g]));
  }
  t.note = fmt::format("training {} of {} parameters, frozen: {}", trained, total,
                       parts.empty() ? "none" : fmt::format("{}", fmt::join(parts, ", ")));
  return t;
}

Config resume_config(const fs::path& dir, const std::vector<std::string>& overrides) {
  const fs::path ckpt = resolve_checkpoint(dir);
  return load_config(ckpt / "config.json", overrides);
}

// A run folder is never overwritten by accident: a new run needs an empty folder (or --force,
// which removes the old run's checkpoints, log and plot first).
void prepare_run_folder(const TrainOptions& opt) {
  const char* run_files[] = {"checkpoint", "checkpoint.prev", "checkpoint.tmp",
                             "log.jsonl",  "loss.svg",        "config.json"};
  if (!opt.resume) {
    std::vector<std::string> found;
    for (const char* f : run_files)
      if (fs::exists(opt.out_dir / f)) found.push_back(f);
    MONET_CHECK(found.empty() || opt.force,
                "train: '{}' already holds a run ({}); continue it with `monet train --resume {}`, "
                "or start it over with --force",
                opt.out_dir.string(), fmt::join(found, ", "), opt.out_dir.string());
    for (const char* f : run_files) fs::remove_all(opt.out_dir / f);
  }
  fs::create_directories(opt.out_dir);
}

TrainResult train(const TrainOptions& opt, std::FILE* out) {
  const Config& cfg = opt.config;
  const Device device = parse_device(cfg.run.device);
  const GemmScope gemm(gemm_mode_of(cfg.run));  // training and its evaluations
  prepare_run_folder(opt);
  const fs::path log_path = opt.out_dir / "log.jsonl";

  std::unique_ptr<TrainData> data = open_train_data(cfg);
  Generator init(cfg.run.seed);
  Generator rng(cfg.run.seed + 2);  // the trainer's own draws (routing noise), saved in checkpoints
  auto model = build_model(cfg.model, init, DType::F32, device, &rng);
  model->train();
  // A fine-tuning run starts from the weights of finetune.init (a resumed one from its own).
  if (!cfg.finetune.init.empty() && !opt.resume)
    load_model_weights(resolve_checkpoint(cfg.finetune.init), *model, &cfg.model);
  const Trainable trainable = trainable_parameters(*model, cfg);
  auto optimizer = make_optimizer(cfg.optim, trainable.params);
  TrainState state;

  if (opt.resume) {
    const fs::path ckpt = resolve_checkpoint(opt.out_dir);
    load_model_weights(ckpt, *model, &cfg.model);
    load_optimizer_state(ckpt, *optimizer);
    state = load_train_state(ckpt);
    MONET_CHECK(state.step <= cfg.run.steps,
                "train --resume: the checkpoint is at step {}, past run.steps = {}; to train on, "
                "raise it: --set run.steps=N with N > {}",
                state.step, cfg.run.steps, state.step);
    data->set_state(state.batcher);
    rng.set_state(state.rng);
    truncate_log(log_path, state.step);
  } else {
    write_file_atomic(log_path, "");
  }
  save_config(opt.out_dir / "config.json", cfg);

  TrainResult result;
  result.parameters = model->num_parameters();
  const int64_t B = cfg.run.batch, T = cfg.model.context, total = cfg.run.steps;
  const int64_t stop = opt.stop_at >= 0 ? std::min(opt.stop_at, total) : total;
  const nn::LrSchedule sched{cfg.optim.lr, cfg.optim.min_lr, cfg.optim.warmup_steps, total};
  Progress progress(total, state.step, out);
  progress.line(fmt::format("model: {} parameters, ffn {}, {} layers, d {} | data: {}",
                            result.parameters, cfg.model.ffn.kind, cfg.model.layers, cfg.model.d,
                            data->describe()));
  if (!cfg.finetune.init.empty())
    progress.line(fmt::format("fine-tuning from {}: {}{}", cfg.finetune.init, trainable.note,
                              cfg.finetune.aux ? "" : "; aux losses logged, not trained"));
  std::ofstream log(log_path, std::ios::app);
  int64_t saved_step = opt.resume ? state.step : -1;  // the step of the newest checkpoint on disk
  auto checkpoint = [&] {
    state.batcher = data->state();
    state.rng = rng.state();
    save_checkpoint(opt.out_dir, *model, optimizer.get(), cfg, state);
    saved_step = state.step;
  };
  auto stop_note = [&] {
    return saved_step < 0 ? fmt::format("no checkpoint was written yet in {}", opt.out_dir.string())
                          : fmt::format("the last checkpoint, at step {}, is left as it was in {}",
                                        saved_step, (opt.out_dir / "checkpoint").string());
  };
  InterruptScope interrupt("finishing this step, then writing the checkpoint");

  std::vector<Batch> batches(static_cast<size_t>(cfg.run.accumulate));
  for (int64_t step = state.step; step < stop && !interrupt.interrupted(); ++step) {
    const double lr = nn::scheduled_lr(sched, step);
    optimizer->set_lr(lr);
    for (Batch& b : batches) b = data->next(B, T, device);
    const StepResult s = train_step(*model, *optimizer, batches, cfg.optim.grad_clip, step,
                                    stop_note(), cfg.finetune.aux);
    const double lm_value = s.lm, aux_value = s.aux, norm = s.grad_norm;
    state.step = step + 1;
    result.last_loss = lm_value;

    progress.step(step, lm_value, lr, B * T * cfg.run.accumulate, cfg.run.log_every);
    json line = {{"step", state.step}, {"loss", lm_value}, {"lr", lr}, {"grad_norm", norm},
                 {"tokens_per_second", progress.tokens_per_second()}};
    if (s.has_aux) line["aux"] = aux_value;
    for (const auto& [k, v] : model->ffn_metrics()) line[k] = v;
    log << line.dump() << "\n";
    const bool last = state.step == total;
    if (!last && cfg.run.eval_every > 0 && state.step % cfg.run.eval_every == 0) {
      auto ev = data->evaluate(*model, B, T, cfg.run.eval_windows);
      progress.line(eval_line(state.step, ev));
      log << eval_log_line(state.step, ev).dump() << "\n";
    }
    log.flush();
    if (!last && state.step != stop && cfg.run.checkpoint_every > 0 &&
        state.step % cfg.run.checkpoint_every == 0)
      checkpoint();
  }
  result.steps = state.step;
  result.tokens_per_second = progress.tokens_per_second();
  if (state.step == total) {
    result.eval = data->evaluate(*model, B, T, cfg.run.eval_windows);
    progress.line(eval_line(state.step, result.eval));
    log << eval_log_line(state.step, result.eval).dump() << "\n";
  }
  log.close();
  checkpoint();
  write_loss_plot(log_path, opt.out_dir / "loss.svg");
  result.interrupted = interrupt.interrupted();
  if (result.interrupted)
    progress.line(fmt::format("interrupted at step {} — resume with `monet train --resume {}`",
                              state.step, opt.out_dir.string()));
  else
    progress.line(fmt::format("done: {} steps, {:.0f} tokens/s; checkpoint in {}", state.step,
                              result.tokens_per_second, (opt.out_dir / "checkpoint").string()));
  return result;
}

}  // namespace monet
