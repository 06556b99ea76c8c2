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
#include "train/data_parallel.h"
#include "train/expert_shards.h"
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
                      const std::string& stop_note, bool train_aux, const StepComm& comm) {
  MONET_CHECK(!batches.empty(), "train_step: no batch");
  const int64_t R = comm.ranks(), rank = comm.comm ? comm.comm->rank() : 0;
  const int64_t parts = static_cast<int64_t>(batches.size()) * R;  // micro-batches, all ranks
  const double scale = 1.0 / static_cast<double>(parts);
  // lm and aux of micro-batch i of rank r at [2(i·R + r)]: after the sum over the ranks (zeros
  // elsewhere add exactly), every rank has them all, in the order one process would.
  std::vector<double> values(static_cast<size_t>(2 * parts), 0.0);
  StepResult r;
  optimizer.zero_grad();
  for (size_t i = 0; i < batches.size(); ++i) {  // gradients add up over the micro-batches
    const auto& [x, y] = batches[i];
    Tensor lm = cross_entropy(model.forward(x), y);
    Tensor aux = model.aux_loss();
    Tensor loss = aux.defined() && train_aux ? add(lm, aux) : lm;
    const size_t at = static_cast<size_t>(2 * (static_cast<int64_t>(i) * R + rank));
    values[at] = lm.item();
    values[at + 1] = aux.defined() ? aux.item() : 0.0;
    r.has_aux = aux.defined();
    // Every micro-batch runs, finite or not: the ranks' collectives must stay in step.
    (parts == 1 ? loss : mul(loss, scale)).backward();
  }
  if (comm.comm) comm.comm->all_reduce_sum(values.data(), static_cast<int64_t>(values.size()));
  for (int64_t j = 0; j < parts; ++j) {
    const double lm_value = values[static_cast<size_t>(2 * j)];
    const double aux_value = values[static_cast<size_t>(2 * j + 1)];
    MONET_CHECK(std::isfinite(lm_value) && std::isfinite(aux_value),
                "training stopped at step {}: the loss is {} (aux {}); {}", step + 1, lm_value,
                aux_value, stop_note);
    r.lm += scale * lm_value;
    r.aux += scale * aux_value;
  }
  if (comm.comm) all_reduce_gradients(comm.replicated, *comm.comm);
  const double max_norm = grad_clip > 0 ? grad_clip : INFINITY;
  r.grad_norm = comm.sharded.empty()
                    ? nn::clip_grad_norm(optimizer.params(), max_norm)
                    : clip_grad_norm_sharded(comm.replicated, comm.sharded, max_norm, *comm.comm);
  MONET_CHECK(std::isfinite(r.grad_norm), "training stopped at step {}: the gradient norm is {}; {}",
              step + 1, r.grad_norm, stop_note);
  optimizer.step();
  return r;
}

StepResult train_step(nn::Transformer& model, nn::Optimizer& optimizer, const Tensor& inputs,
                      const Tensor& targets, double grad_clip, int64_t step,
                      const std::string& stop_note, bool train_aux) {
  return train_step(model, optimizer, {{inputs, targets}}, grad_clip, step, stop_note, train_aux,
                    StepComm{});
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

bool never_checkpointed(const fs::path& dir) {
  return fs::exists(dir / "config.json") && !fs::exists(dir / "checkpoint" / "model.safetensors") &&
         !fs::exists(dir / "checkpoint.prev" / "model.safetensors");
}

Config resume_config(const fs::path& dir, const std::vector<std::string>& overrides) {
  if (never_checkpointed(dir)) return load_config(dir / "config.json", overrides);
  const fs::path ckpt = resolve_checkpoint(dir);
  return load_config(ckpt / "config.json", overrides);
}

namespace {

// A run folder is never overwritten by accident: a new run needs an empty folder, or one whose
// run stopped before its first checkpoint (nothing in it to lose), or --force, which removes the
// old run's checkpoints, log and plot first. Returns a note when it started such a run over.
std::string prepare_run_folder(const TrainOptions& opt) {
  const char* run_files[] = {"checkpoint", "checkpoint.prev", "checkpoint.tmp",
                             "log.jsonl",  "loss.svg",        "config.json"};
  std::string note;
  if (!opt.resume) {
    std::vector<std::string> found;
    for (const char* f : run_files)
      if (fs::exists(opt.out_dir / f)) found.push_back(f);
    const bool nothing_to_lose = never_checkpointed(opt.out_dir);
    MONET_CHECK(found.empty() || opt.force || nothing_to_lose,
                "train: '{}' already holds a run ({}); continue it with `monet train --resume {}`, "
                "or start it over with --force",
                opt.out_dir.string(), fmt::join(found, ", "), opt.out_dir.string());
    if (!found.empty() && nothing_to_lose && !opt.force)
      note = fmt::format("'{}' holds a run stopped before its first checkpoint: starting it over",
                         opt.out_dir.string());
    for (const char* f : run_files) fs::remove_all(opt.out_dir / f);
  }
  fs::create_directories(opt.out_dir);
  return note;
}

}  // namespace

int64_t warmup_for(const Config& cfg) {
  const int64_t w = cfg.optim.warmup_steps, steps = cfg.run.steps;
  return w < steps ? w : steps / 10;
}

TrainResult train(const TrainOptions& opt, std::FILE* out) {
  const Config& cfg = opt.config;
  const Device device = parse_device(cfg.run.device);
  const GemmScope gemm(gemm_mode_of(cfg.run));  // training and its evaluations
  std::unique_ptr<Communicator> alone = opt.comm ? nullptr : single_process();
  Communicator& comm = opt.comm ? *opt.comm : *alone;
  const int64_t R = comm.size();
  const bool lead = comm.rank() == 0;  // rank 0 alone prints and writes the run folder
  const int64_t share = batch_share(cfg.run.batch, comm);  // checked before anything is written
  const fs::path log_path = opt.out_dir / "log.jsonl";

  std::unique_ptr<TrainData> data = open_train_data(cfg);
  Generator init(cfg.run.seed);
  Generator rng(cfg.run.seed + 2);  // the trainer's own draws (routing noise), saved in checkpoints
  auto model = build_model(cfg.model, init, DType::F32, device, &rng);
  model->train();
  // A fine-tuning run starts from the weights of finetune.init (a resumed one from its own).
  if (!cfg.finetune.init.empty() && !opt.resume)
    load_model_weights(resolve_checkpoint(cfg.finetune.init), *model, &cfg.model);
  Trainable trainable = trainable_parameters(*model, cfg);
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
    if (state.step == cfg.run.steps) {  // nothing to train: the folder stays as it is
      if (comm.rank() == 0 && out)
        fmt::print(out,
                   "the run in {} is finished ({} of {} steps): nothing to train; to train on, "
                   "--set run.steps=N with N > {}\n",
                   opt.out_dir.string(), state.step, cfg.run.steps, state.step);
      TrainResult done;
      done.steps = state.step;
      done.parameters = model->num_parameters();
      return done;
    }
    data->set_state(state.batcher);
    rng.set_state(state.rng);
  }
  TrainResult result;
  result.parameters = model->num_parameters();  // of the whole model, before any sharding

  // Expert parallel: each SMoE layer keeps this rank's experts; the optimizer (its state loaded
  // whole on resume) is built again over the shards. Then which gradients the ranks sum.
  ExpertShards shards;
  if (cfg.run.expert_parallel && R > 1) {
    const nn::NamedTensors whole_state = optimizer->state_dict();
    shards = shard_experts(*model, comm, cfg.model.ffn.kind);
    trainable = trainable_parameters(*model, cfg);
    optimizer = make_optimizer(cfg.optim, trainable.params);
    optimizer->load_state_dict(cut_to_shards(whole_state, shards));
  }
  StepComm step_comm;
  if (R > 1) {
    step_comm.comm = &comm;
    for (const auto& [name, p] : trainable.params)
      (shards.find(name) ? step_comm.sharded : step_comm.replicated).emplace_back(name, p);
  }
  // Evaluation splits batches over the ranks, unless the experts are sharded: then every rank runs
  // every batch, so that the layers' all-to-alls meet.
  Communicator* eval_comm = shards.empty() ? &comm : nullptr;

  // The run folder, once the config has proved good: rank 0 prepares it while the others wait.
  std::string folder_note;
  if (lead) {
    folder_note = prepare_run_folder(opt);
    if (opt.resume)
      truncate_log(log_path, state.step);
    else
      write_file_atomic(log_path, "");
    save_config(opt.out_dir / "config.json", cfg);
  }
  comm.barrier();  // a failure on rank 0 ends the job (core/comm.h), not this wait
  const int64_t B = cfg.run.batch, T = cfg.model.context, total = cfg.run.steps;
  const int64_t stop = opt.stop_at >= 0 ? std::min(opt.stop_at, total) : total;
  const nn::LrSchedule sched{cfg.optim.lr, cfg.optim.min_lr, warmup_for(cfg), total};
  Progress progress(total, state.step, lead ? out : nullptr);
  if (!folder_note.empty()) progress.line(folder_note);
  if (opt.resume)
    progress.line(fmt::format("resuming {} from step {} of {}", opt.out_dir.string(), state.step,
                              total));
  if (sched.warmup_steps != cfg.optim.warmup_steps)
    progress.line(fmt::format("optim.warmup_steps = {} is not less than run.steps = {}: warming "
                              "up over {} steps, a tenth of the run",
                              cfg.optim.warmup_steps, total, sched.warmup_steps));
  progress.line(fmt::format("model: {} parameters, ffn {}, {} layers, d {} | data: {}",
                            result.parameters, cfg.model.ffn.kind, cfg.model.layers, cfg.model.d,
                            data->describe()));
  if (R > 1) {
    progress.line(fmt::format(
        "{}: data parallel, {} of each batch's {} windows per rank{}", comm.describe(), share, B,
        shards.empty() ? ""
                       : fmt::format("; expert parallel, {} of {} experts "
                                     "per rank in {} SMoE layers",
                                     shards.params[0].count, shards.params[0].experts,
                                     shards.params.size() / 2)));
    progress.set_tag(fmt::format(" | {} ranks", R));
    progress.set_plain();
  }
  if (!cfg.finetune.init.empty())
    progress.line(fmt::format("fine-tuning from {}: {}{}", cfg.finetune.init, trainable.note,
                              cfg.finetune.aux ? "" : "; aux losses logged, not trained"));
  std::ofstream log;  // rank 0's; the others write nothing
  if (lead) log.open(log_path, std::ios::app);
  int64_t saved_step = opt.resume ? state.step : -1;  // the step of the newest checkpoint on disk
  auto checkpoint = [&] {
    state.batcher = data->state();
    state.rng = rng.state();
    if (shards.empty()) {
      if (lead) save_checkpoint(opt.out_dir, *model, optimizer.get(), cfg, state);
    } else {  // the shards made whole (collective), written by rank 0 as one process would
      const nn::NamedTensors weights = gather_shards(model_state(*model), shards, comm);
      const nn::NamedTensors moments = gather_shards(optimizer->state_dict(), shards, comm);
      if (lead) save_checkpoint(opt.out_dir, weights, &moments, cfg, state);
    }
    saved_step = state.step;
  };
  auto stop_note = [&] {
    return saved_step < 0 ? fmt::format("no checkpoint was written yet in {}", opt.out_dir.string())
                          : fmt::format("the last checkpoint, at step {}, is left as it was in {}",
                                        saved_step, (opt.out_dir / "checkpoint").string());
  };
  InterruptScope interrupt("finishing this step, then writing the checkpoint");
  // The ranks stop together: a signal may reach them at different steps, so they agree (any rank
  // interrupted stops all) before each step.
  bool interrupted = false;
  auto agree_to_stop = [&] {
    double any = interrupt.interrupted() ? 1.0 : 0.0;
    if (R > 1) comm.all_reduce_sum(&any, 1);
    return interrupted = any > 0;
  };

  std::vector<Batch> batches(static_cast<size_t>(cfg.run.accumulate));
  for (int64_t step = state.step; step < stop && !agree_to_stop(); ++step) {
    const double lr = nn::scheduled_lr(sched, step);
    optimizer->set_lr(lr);
    for (Batch& b : batches) {  // the whole batch, then this rank's share of it
      b = data->next(B, T, device);
      b = {rank_share(b.first, comm), rank_share(b.second, comm)};
    }
    if (opt.before_step) opt.before_step(step, *model);
    const CommTraffic before = comm.traffic();
    const StepResult s = train_step(*model, *optimizer, batches, cfg.optim.grad_clip, step,
                                    stop_note(), cfg.finetune.aux, step_comm);
    average_buffers(model->named_buffers(), comm);
    const double lm_value = s.lm, aux_value = s.aux, norm = s.grad_norm;
    state.step = step + 1;
    result.last_loss = lm_value;

    // The MoE numbers (aux loss, the layers' routing metrics) on the lines that stay on screen.
    const std::map<std::string, double> ffn = model->ffn_metrics();
    std::string moe_numbers = s.has_aux ? fmt::format(" | aux {:.4g}", aux_value) : "";
    for (const auto& [k, v] : ffn) moe_numbers += fmt::format(" | {} {:.4g}", k, v);
    progress.step(step, lm_value, lr, B * T * cfg.run.accumulate, cfg.run.log_every, moe_numbers);
    json line = {{"step", state.step},
                 {"loss", lm_value},
                 {"lr", lr},
                 {"grad_norm", norm},
                 {"tokens_per_second", progress.tokens_per_second()},
                 {"ranks", R}};
    if (R > 1) {  // payload bytes of this rank's collectives in the step (core/comm.h)
      line["all_reduce_bytes"] = comm.traffic().all_reduce_bytes - before.all_reduce_bytes;
      line["all_to_all_bytes"] = comm.traffic().all_to_all_bytes - before.all_to_all_bytes;
      line["comm_seconds"] = comm.traffic().all_reduce_seconds + comm.traffic().all_to_all_seconds -
                             before.all_reduce_seconds - before.all_to_all_seconds;
    }
    if (s.has_aux) line["aux"] = aux_value;
    for (const auto& [k, v] : ffn) line[k] = v;
    log << line.dump() << "\n";
    const bool last = state.step == total;
    if (!last && cfg.run.eval_every > 0 && state.step % cfg.run.eval_every == 0) {
      auto ev = data->evaluate(*model, B, T, cfg.run.eval_windows, eval_comm);
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
    result.eval = data->evaluate(*model, B, T, cfg.run.eval_windows, eval_comm);
    progress.line(eval_line(state.step, result.eval));
    log << eval_log_line(state.step, result.eval).dump() << "\n";
  }
  log.close();
  checkpoint();
  if (lead) write_loss_plot(log_path, opt.out_dir / "loss.svg");
  result.interrupted = interrupted;
  if (result.interrupted)
    progress.line(fmt::format("interrupted at step {} — resume with `monet train --resume {}`",
                              state.step, opt.out_dir.string()));
  else
    progress.line(fmt::format("done: {} steps, {:.0f} tokens/s{}; checkpoint in {}", state.step,
                              result.tokens_per_second, R > 1 ? fmt::format(" on {} ranks", R) : "",
                              (opt.out_dir / "checkpoint").string()));
  return result;
}

}  // namespace monet
