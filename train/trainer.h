// The training loop of `monet train` and `monet finetune`:
//   batch from the data (train/train_data.h: a corpus, or instruction data) → forward → LM loss (+
//   the layers' auxiliary losses) → backward → clip → optimizer step → progress line and log.jsonl
//   → periodic evaluation and checkpoint.
// At the end: a final evaluation, a checkpoint, and loss.svg (train loss and val loss per step).
// A fine-tuning run (config section `finetune`) starts from finetune.init's weights, trains all
// but the frozen parameter groups (trainable_parameters), and may leave the aux losses out.
//
// A new run refuses a folder that already holds one (TrainOptions::force starts it over).
// Ctrl-C (SIGINT) or SIGTERM: the current step finishes, the checkpoint and the loss plot are
// written, and train returns with `interrupted` set; a second signal ends the process at once.
//
// Resuming (`resume = true`) reloads weights, optimizer state, the batcher's position and the
// trainer's RNG from `<out>/checkpoint`, so the run continues bit for bit as if never stopped.
// A non-finite loss or gradient norm stops the run with the step number, before the optimizer
// touches the weights, and leaves the last checkpoint as it was.
#pragma once
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/comm.h"
#include "nn/optim.h"
#include "nn/transformer.h"
#include "train/config.h"
#include "train/evaluate.h"

namespace monet {

struct TrainOptions {
  Config config;
  std::filesystem::path out_dir;
  bool resume = false;
  int64_t stop_at = -1;  // stop (with a checkpoint) once this many steps are done; -1: run to the end
  bool force = false;    // start a new run in a folder that holds one (its files are removed)
  // The job's processes (core/comm.h); null: this process alone. With several ranks the run is
  // data parallel (train/data_parallel.h): each rank trains on its share of every batch, rank 0
  // alone prints and writes the folder.
  Communicator* comm = nullptr;
  // Called on every rank before each step with the step's index (tests inject faults here).
  std::function<void(int64_t step, nn::Transformer& model)> before_step = nullptr;
};

struct TrainResult {
  int64_t steps = 0;             // steps completed
  double last_loss = 0;          // LM loss of the last step
  double tokens_per_second = 0;  // over this invocation's steps
  int64_t parameters = 0;
  std::vector<DomainEval> eval;  // the final evaluation (empty when stopped early)
  bool interrupted = false;      // stopped by SIGINT / SIGTERM (after a checkpoint)
};

TrainResult train(const TrainOptions& opt, std::FILE* out = stdout);

// The warm-up steps of the learning-rate schedule: optim.warmup_steps, or a tenth of run.steps
// when it is not less than run.steps (a short run of a long run's config; the run says so).
int64_t warmup_for(const Config& cfg);

// The optimizer of `optim` (AdamW or SGD) over `params`, as `monet train` builds it.
std::unique_ptr<nn::Optimizer> make_optimizer(const OptimConfig& optim, const nn::NamedTensors& params);

// One training step of `monet train`, also what `monet bench` times: forward → LM loss (+ the
// layers' aux losses) → backward → gradient clipping (grad_clip ≤ 0: off) → optimizer step, at
// the optimizer's current learning rate. A non-finite loss (before backward) or gradient norm
// (before the step) throws "training stopped at step <step + 1>: ...; <stop_note>", leaving the
// weights untouched (every micro-batch runs its backward first, so that ranks stay in step).
// With several micro-batches (run.accumulate) the step's loss is their mean and the gradients add
// up over them, each scaled by 1/n, before one clip and one optimizer step: n micro-batches of B
// windows give the step of one batch of n·B windows, up to float rounding, for layers that treat
// each token alone. Batch statistics (BatchNorm in MONET's router and PEER's query, the SMoE and
// MONET aux losses) see one micro-batch at a time. With `comm`, the batches are this rank's shares
// and the step is that of all ranks' micro-batches together (1/(n·R) each; train/data_parallel.h).
struct StepResult {
  double lm = 0, aux = 0, grad_norm = 0;  // lm and aux: means over the micro-batches
  bool has_aux = false;
};
using Batch = std::pair<Tensor, Tensor>;  // inputs [B, T], targets [B, T]
// The ranks of a data parallel step (train/data_parallel.h) and the parameters they hold alike,
// whose gradients are summed over them before the clip (default: one process, nothing to sum).
struct StepComm {
  Communicator* comm = nullptr;
  nn::NamedTensors replicated;
  // Expert parallel (train/expert_shards.h): this rank's expert shards, whose gradients stay
  // local; the gradient norm adds theirs over the ranks.
  nn::NamedTensors sharded;
  int64_t ranks() const { return comm ? comm->size() : 1; }
};
// train_aux = false (finetune.aux) leaves the aux losses out of the loss; they are still reported.
StepResult train_step(nn::Transformer& model, nn::Optimizer& optimizer,
                      const std::vector<Batch>& batches, double grad_clip, int64_t step,
                      const std::string& stop_note, bool train_aux = true,
                      const StepComm& comm = {});
StepResult train_step(nn::Transformer& model, nn::Optimizer& optimizer, const Tensor& inputs,
                      const Tensor& targets, double grad_clip, int64_t step,
                      const std::string& stop_note, bool train_aux = true);

// The parameters a run trains: all but the groups of finetune.freeze (monet/registry.h), whose
// parameters stop requiring gradients. Errors when a frozen group is empty for the model's kind
// (routers of a dense model). `note` says what is trained and frozen, with parameter counts.
struct Trainable {
  nn::NamedTensors params;
  std::string note;
};
Trainable trainable_parameters(nn::Module& model, const Config& cfg);

// A config for a run resumed from `dir`: the checkpoint's, with `overrides` applied on top. A
// folder whose run stopped before its first checkpoint (train/run_folder.h: never_checkpointed)
// gives its config.json: `train --resume` starts it from step 0.
Config resume_config(const std::filesystem::path& dir, const std::vector<std::string>& overrides);

}  // namespace monet
