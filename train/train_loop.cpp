// The training loop of `monet train` and `monet finetune` (train/trainer.h), as a Trainer whose
// named steps read in order: setup (the model, its optimizer and a resumed state; then the ranks'
// wiring; then the run folder) → for each step: step() → evaluate_every() → checkpoint_every()
// → finish() (the final evaluation, the checkpoint, loss.svg). Data- and expert-parallel wiring
// happens in setup only; the step itself sees a StepComm.
#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "train/checkpoint.h"
#include "train/data_parallel.h"
#include "train/expert_shards.h"
#include "train/model.h"
#include "train/run_folder.h"
#include "train/train_data.h"
#include "train/trainer.h"
#include "util/fileio.h"
#include "util/interrupt.h"
#include "util/progress.h"

namespace monet {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

class Trainer {
 public:
  Trainer(const TrainOptions& opt, std::FILE* out)
      : opt_(opt),
        cfg_(opt.config),
        device_(usable_device(cfg_.run.device)),
        alone_(opt.comm ? nullptr : single_process()),
        comm_(opt.comm ? *opt.comm : *alone_),
        lead_(comm_.rank() == 0),
        share_(batch_share(cfg_.run.batch, comm_)),  // checked before anything is written
        out_(out),
        log_path_(opt.out_dir / "log.jsonl"),
        sched_{cfg_.optim.lr, cfg_.optim.min_lr, warmup_for(cfg_), cfg_.run.steps} {}

  TrainResult run();

 private:
  bool build_model_and_state();  // false: a resumed run that is already finished
  void wire_ranks();
  void open_run_folder();
  bool agree_to_stop();
  StepResult step(int64_t step);
  void evaluate_every();
  void checkpoint();
  std::string stop_note() const;
  TrainResult finish();

  const TrainOptions& opt_;
  const Config& cfg_;
  const Device device_;
  std::unique_ptr<Communicator> alone_;
  Communicator& comm_;
  const bool lead_;  // rank 0 alone prints and writes the run folder
  const int64_t share_;
  std::FILE* out_;
  const fs::path log_path_;
  const nn::LrSchedule sched_;

  std::unique_ptr<TrainData> data_;
  Generator rng_{cfg_.run.seed + 2};  // the trainer's own draws (routing noise), checkpointed
  std::shared_ptr<nn::Transformer> model_;
  Trainable trainable_;
  std::unique_ptr<nn::Optimizer> optimizer_;
  TrainState state_;
  ExpertShards shards_;
  StepComm step_comm_;
  // The micro-batches of a step, made once and refilled each step.
  std::vector<Batch> batches_ = std::vector<Batch>(static_cast<size_t>(cfg_.run.accumulate));
  Communicator* eval_comm_ = nullptr;
  std::unique_ptr<Progress> progress_;
  std::ofstream log_;        // rank 0's; the others write nothing
  int64_t saved_step_ = -1;  // the step of the newest checkpoint on disk
  std::unique_ptr<InterruptScope> interrupt_;
  bool interrupted_ = false;
  TrainResult result_;
};

// The model (from finetune.init's weights for a fine-tuning run), its optimizer, and, resumed,
// the checkpoint's weights, moments, batcher position and RNG.
bool Trainer::build_model_and_state() {
  data_ = open_train_data(cfg_);
  Generator init(cfg_.run.seed);
  model_ = build_model(cfg_.model, init, DType::F32, device_, &rng_);
  model_->train();
  if (!cfg_.finetune.init.empty() && !opt_.resume)
    load_model_weights(resolve_checkpoint(cfg_.finetune.init), *model_, &cfg_.model);
  trainable_ = trainable_parameters(*model_, cfg_);
  optimizer_ = make_optimizer(cfg_.optim, trainable_.params);
  result_.parameters = model_->num_parameters();  // of the whole model, before any sharding
  if (!opt_.resume) return true;
  const fs::path ckpt = resolve_checkpoint(opt_.out_dir);
  load_model_weights(ckpt, *model_, &cfg_.model);
  load_optimizer_state(ckpt, *optimizer_);
  state_ = load_train_state(ckpt);
  MONET_CHECK(state_.step <= cfg_.run.steps,
              "train --resume: the checkpoint is at step {}, past run.steps = {}; to train on, "
              "raise it: --set run.steps=N with N > {}",
              state_.step, cfg_.run.steps, state_.step);
  result_.steps = saved_step_ = state_.step;
  if (state_.step == cfg_.run.steps) {  // nothing to train: the folder stays as it is
    if (lead_ && out_)
      fmt::print(out_,
                 "the run in {} is finished ({} of {} steps): nothing to train; to train on, "
                 "--set run.steps=N with N > {}\n",
                 opt_.out_dir.string(), state_.step, cfg_.run.steps, state_.step);
    return false;
  }
  data_->set_state(state_.batcher);
  rng_.set_state(state_.rng);
  return true;
}

// Expert parallel: each SMoE layer keeps this rank's experts, and the optimizer (its state loaded
// whole on resume) is built again over the shards. Then which gradients the ranks sum, and how
// evaluation splits: over the ranks, unless the experts are sharded (then every rank runs every
// batch, so that the layers' all-to-alls meet).
void Trainer::wire_ranks() {
  const int64_t R = comm_.size();
  if (cfg_.run.expert_parallel && R > 1) {
    const nn::NamedTensors whole_state = optimizer_->state_dict();
    shards_ = shard_experts(*model_, comm_, cfg_.model.ffn.kind->name);
    trainable_ = trainable_parameters(*model_, cfg_);
    optimizer_ = make_optimizer(cfg_.optim, trainable_.params);
    optimizer_->load_state_dict(cut_to_shards(whole_state, shards_));
  }
  if (R > 1) {
    step_comm_.comm = &comm_;
    for (const auto& [name, p] : trainable_.params)
      (shards_.find(name) ? step_comm_.sharded : step_comm_.replicated).emplace_back(name, p);
  }
  eval_comm_ = shards_.empty() ? &comm_ : nullptr;
}

// The run folder, once the config has proved good (rank 0 prepares it while the others wait),
// and the lines that open the run.
void Trainer::open_run_folder() {
  std::string folder_note;
  if (lead_) {
    folder_note = prepare_run_folder(opt_.out_dir, opt_.resume, opt_.force);
    if (opt_.resume)
      truncate_log(log_path_, state_.step);
    else
      write_file_atomic(log_path_, "");
    save_config(opt_.out_dir / "config.json", cfg_);
  }
  comm_.barrier();  // a failure on rank 0 ends the job (core/comm.h), not this wait
  const int64_t total = cfg_.run.steps, R = comm_.size();
  progress_ = std::make_unique<Progress>(total, state_.step, lead_ ? out_ : nullptr);
  Progress& p = *progress_;
  if (!folder_note.empty()) p.line(folder_note);
  if (opt_.resume)
    p.line(
        fmt::format("resuming {} from step {} of {}", opt_.out_dir.string(), state_.step, total));
  if (sched_.warmup_steps != cfg_.optim.warmup_steps)
    p.line(
        fmt::format("optim.warmup_steps = {} is not less than run.steps = {}: warming up over "
                    "{} steps, a tenth of the run",
                    cfg_.optim.warmup_steps, total, sched_.warmup_steps));
  p.line(fmt::format("model: {} parameters, ffn {}, {} layers, d {} | data: {}", result_.parameters,
                     cfg_.model.ffn.kind->name, cfg_.model.layers, cfg_.model.d, data_->describe()));
  if (R > 1) {
    p.line(fmt::format("{}: data parallel, {} of each batch's {} windows per rank{}",
                       comm_.describe(), share_, cfg_.run.batch,
                       shards_.empty()
                           ? ""
                           : fmt::format("; expert parallel, {} of {} experts per "
                                         "rank in {} SMoE layers",
                                         shards_.params[0].count, shards_.params[0].experts,
                                         shards_.params.size() / 2)));
    p.set_tag(fmt::format(" | {} ranks", R));
    p.set_plain();
  }
  if (!cfg_.finetune.init.empty())
    p.line(fmt::format("fine-tuning from {}: {}{}", cfg_.finetune.init, trainable_.note,
                       cfg_.finetune.aux ? "" : "; aux losses logged, not trained"));
  if (lead_) log_.open(log_path_, std::ios::app);
  interrupt_ = std::make_unique<InterruptScope>("finishing this step, then writing the checkpoint");
}

// The ranks stop together: a signal may reach them at different steps, so they agree (any rank
// interrupted stops all) before each step.
bool Trainer::agree_to_stop() {
  double any = interrupt_->interrupted() ? 1.0 : 0.0;
  if (comm_.size() > 1) comm_.all_reduce_sum(&any, 1);
  return interrupted_ = any > 0;
}

std::string Trainer::stop_note() const {
  return saved_step_ < 0 ? fmt::format("no checkpoint was written yet in {}", opt_.out_dir.string())
                         : fmt::format("the last checkpoint, at step {}, is left as it was in {}",
                                       saved_step_, (opt_.out_dir / "checkpoint").string());
}

// One optimizer step on this rank's share of the batch, its progress line and its log line.
StepResult Trainer::step(int64_t step) {
  const int64_t B = cfg_.run.batch, T = cfg_.model.context;
  const double lr = nn::scheduled_lr(sched_, step);
  optimizer_->set_lr(lr);
  for (Batch& b : batches_) {  // the whole batch, then this rank's share of it
    b = data_->next(B, T, device_);
    b = {rank_share(b.first, comm_), rank_share(b.second, comm_)};
  }
  if (opt_.before_step) opt_.before_step(step, *model_);
  const CommTraffic before = comm_.traffic();
  const StepResult s = train_step(*model_, *optimizer_, batches_, cfg_.optim.grad_clip, step,
                                  stop_note(), cfg_.finetune.aux, step_comm_);
  average_buffers(model_->named_buffers(), comm_);
  state_.step = step + 1;
  result_.last_loss = s.lm;

  // The MoE numbers (aux loss, the layers' routing metrics) on the lines that stay on screen.
  const std::map<std::string, double> ffn = model_->ffn_metrics();
  std::string moe_numbers = s.has_aux ? fmt::format(" | aux {:.4g}", s.aux) : "";
  for (const auto& [k, v] : ffn) moe_numbers += fmt::format(" | {} {:.4g}", k, v);
  progress_->step(step, s.lm, lr, B * T * cfg_.run.accumulate, cfg_.run.log_every, moe_numbers);
  json line = {{"step", state_.step},
               {"loss", s.lm},
               {"lr", lr},
               {"grad_norm", s.grad_norm},
               {"tokens_per_second", progress_->tokens_per_second()},
               {"ranks", comm_.size()}};
  if (comm_.size() > 1) {  // payload bytes of this rank's collectives in the step (core/comm.h)
    const CommTraffic& t = comm_.traffic();
    line["all_reduce_bytes"] = t.all_reduce_bytes - before.all_reduce_bytes;
    line["all_to_all_bytes"] = t.all_to_all_bytes - before.all_to_all_bytes;
    line["comm_seconds"] = t.all_reduce_seconds + t.all_to_all_seconds - before.all_reduce_seconds -
                           before.all_to_all_seconds;
  }
  if (s.has_aux) line["aux"] = s.aux;
  for (const auto& [k, v] : ffn) line[k] = v;
  log_ << line.dump() << "\n";
  return s;
}

// The evaluation every run.eval_every steps (the last step's is finish()'s).
void Trainer::evaluate_every() {
  const int64_t n = state_.step;
  if (n == cfg_.run.steps || cfg_.run.eval_every <= 0 || n % cfg_.run.eval_every != 0) return;
  const auto ev = data_->evaluate(*model_, cfg_.run.batch, cfg_.model.context,
                                  cfg_.run.eval_windows, eval_comm_);
  progress_->line(eval_line(n, ev));
  log_ << eval_log_line(n, ev).dump() << "\n";
}

void Trainer::checkpoint() {
  state_.batcher = data_->state();
  state_.rng = rng_.state();
  if (shards_.empty()) {
    if (lead_) save_checkpoint(opt_.out_dir, *model_, optimizer_.get(), cfg_, state_);
  } else {  // the shards made whole (collective), written by rank 0 as one process would
    const nn::NamedTensors weights = gather_shards(model_state(*model_), shards_, comm_);
    const nn::NamedTensors moments = gather_shards(optimizer_->state_dict(), shards_, comm_);
    if (lead_) save_checkpoint(opt_.out_dir, weights, &moments, cfg_, state_);
  }
  saved_step_ = state_.step;
}

// The final evaluation (when the run reached its last step), the checkpoint and loss.svg.
TrainResult Trainer::finish() {
  result_.steps = state_.step;
  result_.tokens_per_second = progress_->tokens_per_second();
  if (state_.step == cfg_.run.steps) {
    result_.eval = data_->evaluate(*model_, cfg_.run.batch, cfg_.model.context,
                                   cfg_.run.eval_windows, eval_comm_);
    progress_->line(eval_line(state_.step, result_.eval));
    log_ << eval_log_line(state_.step, result_.eval).dump() << "\n";
  }
  log_.close();
  checkpoint();
  if (lead_) write_loss_plot(log_path_, opt_.out_dir / "loss.svg");
  result_.interrupted = interrupted_;
  if (interrupted_)
    progress_->line(fmt::format("interrupted at step {} — resume with `monet train --resume {}`",
                                state_.step, opt_.out_dir.string()));
  else
    progress_->line(fmt::format("done: {} steps, {:.0f} tokens/s{}; checkpoint in {}", state_.step,
                                result_.tokens_per_second,
                                comm_.size() > 1 ? fmt::format(" on {} ranks", comm_.size()) : "",
                                (opt_.out_dir / "checkpoint").string()));
  return result_;
}

TrainResult Trainer::run() {
  const GemmScope gemm(gemm_mode_of(cfg_.run));  // training and its evaluations
  if (!build_model_and_state()) return result_;
  wire_ranks();
  open_run_folder();
  const int64_t total = cfg_.run.steps;
  const int64_t stop = opt_.stop_at >= 0 ? std::min(opt_.stop_at, total) : total;
  for (int64_t s = state_.step; s < stop && !agree_to_stop(); ++s) {
    step(s);
    evaluate_every();
    log_.flush();
    const int64_t n = state_.step;
    if (n != total && n != stop && cfg_.run.checkpoint_every > 0 &&
        n % cfg_.run.checkpoint_every == 0)
      checkpoint();
  }
  return finish();
}

}  // namespace

TrainResult train(const TrainOptions& opt, std::FILE* out) {
  return Trainer(opt, out).run();
}

}  // namespace monet
