// What `monet train` (and `monet finetune`) draws its batches from and evaluates on, chosen by
// what run.data holds:
//   a corpus folder (train/corpus.h): random windows of the train stream; evaluation is the val
//     loss and bits per byte per domain, then "all";
//   instruction data (train/instruct.h): random examples of train.jsonl (of finetune.families),
//     the loss on response tokens only; evaluation is the response loss on test.jsonl per
//     cluster, then "all".
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "nn/transformer.h"
#include "train/config.h"
#include "train/corpus.h"
#include "train/evaluate.h"

namespace monet {

class TrainData {
 public:
  virtual ~TrainData() = default;
  virtual std::string describe() const = 0;  // for the run's first progress line
  // inputs [B, T] and targets [B, T]; unscored targets are kIgnoreTarget.
  virtual std::pair<Tensor, Tensor> next(int64_t B, int64_t T, Device device) = 0;
  virtual BatcherState state() const = 0;
  virtual void set_state(const BatcherState& s) = 0;
  // max_windows: eval windows per domain of a corpus (0: all); instruction data scores every test
  // example. With several ranks in `comm`, every rank calls it and runs a share of the batches.
  virtual std::vector<DomainEval> evaluate(nn::Transformer& model, int64_t B, int64_t T,
                                           int64_t max_windows, Communicator* comm) = 0;
};

// The data of cfg.run.data (byte tokens), its batcher seeded with run.seed + 1.
std::unique_ptr<TrainData> open_train_data(const Config& cfg);

}  // namespace monet
