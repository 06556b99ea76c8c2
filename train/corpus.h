// Training text: a folder of domains, random training batches, and evaluation windows.
//
// A corpus folder holds, for each domain, `<domain>.train.txt` and `<domain>.val.txt` (both are
// required and must be non-empty); other files and sub-folders (README.md, LICENSES/) are ignored.
// Domains are kept sorted by name. The training stream is every domain's train split concatenated
// in that order, so a rare training window straddles two domains.
#pragma once
#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/random.h"
#include "core/tensor.h"
#include "train/tokenizer.h"

namespace monet {

struct Domain {
  std::string name;
  std::vector<int32_t> train, val;  // token ids
};

class Corpus {
 public:
  // Errors (one line, naming the path) on a missing folder, a folder without domain files, a
  // domain lacking its train or val file, and an empty file.
  static Corpus load(const std::filesystem::path& folder, const Tokenizer& tokenizer);

  const std::filesystem::path& folder() const { return folder_; }
  const std::vector<Domain>& domains() const { return domains_; }
  const Domain& domain(std::string_view name) const;  // errors on an unknown name
  const std::vector<int32_t>& train_stream() const { return train_stream_; }
  int64_t val_tokens() const;  // over all domains

 private:
  std::filesystem::path folder_;
  std::vector<Domain> domains_;
  std::vector<int32_t> train_stream_;
};

// Everything a Batcher needs to continue exactly where it was: saved in checkpoints.
struct BatcherState {
  std::array<uint64_t, 4> rng{};  // the generator's xoshiro256** state
  int64_t batches = 0;            // batches drawn so far
  bool operator==(const BatcherState&) const = default;
};
// Errors on a negative batch count or an all-zero generator state (a damaged checkpoint).
void check_batcher_state(const BatcherState& s);

// Random training windows: each row of a batch starts at a uniformly drawn position of the token
// stream (drawn from the batcher's own generator, row by row), so the draws depend only on the
// seed, B, T and the stream length.
class Batcher {
 public:
  // Takes the tokens by value: pass std::move(...) or accept one copy.
  Batcher(std::vector<int32_t> tokens, uint64_t seed);

  // inputs [B, T] and targets [B, T] (int32), targets[b][t] = inputs[b][t + 1] of the same window
  // of T + 1 tokens. Errors when T + 1 exceeds the number of tokens.
  std::pair<Tensor, Tensor> next(int64_t B, int64_t T, Device device = Device::cpu());

  BatcherState state() const { return {gen_.state(), batches_}; }
  void set_state(const BatcherState& s);
  int64_t tokens() const { return static_cast<int64_t>(tokens_.size()); }

 private:
  std::vector<int32_t> tokens_;
  Generator gen_;
  int64_t batches_ = 0;
};

// Targets equal to this are not scored: the default ignore_index of cross_entropy (core/ops.h).
inline constexpr int32_t kIgnoreTarget = -100;

struct EvalBatch {
  Tensor inputs, targets;  // int32 [b, T], b <= B
  int64_t scored = 0;      // targets that are not kIgnoreTarget
  std::vector<int64_t> starts;  // [b] position in `tokens` of each row's first input token
};

// Evaluation windows over one token vector (a domain's val split), deterministic.
//
// Window w (w < (n-1)/T) reads inputs tokens[wT, wT+T) and targets tokens[wT+1, wT+T+1). When
// T does not divide n-1, one last window, tokens [n-1-T, n-1) -> [n-T, n), scores only the targets
// not scored before (the others are kIgnoreTarget), so every token after the first is scored
// exactly once, always with real text as context. With 0 < max_windows < the number of windows,
// max_windows windows evenly spread over the text are kept instead. Windows are packed in order
// into batches of B rows (the last batch may be smaller). Errors when n < T + 1.
std::vector<EvalBatch> eval_batches(const std::vector<int32_t>& tokens, int64_t B, int64_t T,
                                    int64_t max_windows = 0, Device device = Device::cpu());

}  // namespace monet
