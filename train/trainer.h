// The training loop of `monet train`:
//   batch from the corpus → forward → LM loss (+ the layers' auxiliary losses) → backward →
//   clip → optimizer step → progress line and log.jsonl → periodic evaluation and checkpoint.
// At the end: a final evaluation, a checkpoint, and loss.svg (train loss and val loss per step).
//
// Resuming (`resume = true`) reloads weights, optimizer state, the batcher's position and the
// trainer's RNG from `<out>/checkpoint`, so the run continues bit for bit as if never stopped.
// A non-finite loss or gradient norm stops the run with the step number, before the optimizer
// touches the weights, and leaves the last checkpoint as it was.
#pragma once
#include <cstdio>
#include <filesystem>
#include <vector>

#include "train/config.h"
#include "train/evaluate.h"

namespace monet {

struct TrainOptions {
  Config config;
  std::filesystem::path out_dir;
  bool resume = false;
  int64_t stop_at = -1;  // stop (with a checkpoint) once this many steps are done; -1: run to the end
};

struct TrainResult {
  int64_t steps = 0;             // steps completed
  double last_loss = 0;          // LM loss of the last step
  double tokens_per_second = 0;  // over this invocation's steps
  int64_t parameters = 0;
  std::vector<DomainEval> eval;  // the final evaluation (empty when stopped early)
};

TrainResult train(const TrainOptions& opt, std::FILE* out = stdout);

// A config for a run resumed from `dir`: the checkpoint's, with `overrides` applied on top.
Config resume_config(const std::filesystem::path& dir, const std::vector<std::string>& overrides);

}  // namespace monet
