// Instruction data for fine-tuning (FLAN-style, issue #17): task families grouped in clusters,
// several phrasings of each instruction, and clusters held out of training for zero-shot tests.
//
// A folder (data/toy4_instruct/, written by scripts/make_instruct_data.py) holds
//   train.jsonl    one example per line: {"family", "cluster", "prompt", "response"}
//   test.jsonl     the same, from the corpus's val split; held-out families appear only here
//   families.json  {"families": [{"name", "cluster", "held_out", ...}], ...}
//
// The template joins an example into one text:   prompt + "\nA: " + response + "\n"
// The model reads all of it; the loss is taken on the response and its closing "\n" only, and
// generation stops at the first "\n" after "A: ". One example is one row of a batch, padded on the
// right to the context: causal attention never lets a real token see the padding, and padded
// targets are not scored, so the masking is exact. (Batch statistics do see the padded positions:
// BatchNorm in MONET's routers and PEER's query network, and the load-balancing losses.)
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/comm.h"
#include "core/random.h"
#include "core/tensor.h"
#include "nn/transformer.h"
#include "train/corpus.h"
#include "train/tokenizer.h"

namespace monet {

inline constexpr std::string_view kInstructSeparator = "\nA: ", kInstructEnd = "\n";

struct InstructExample {
  std::string family, cluster, prompt, response;
};

struct FamilyInfo {
  std::string name, cluster;
  bool held_out = false;  // never in train.jsonl: tested zero-shot
};

// What the model reads before answering, and the whole text of an example.
std::string instruct_prompt(const InstructExample& e);
std::string instruct_text(const InstructExample& e);

// The examples of a JSON Lines file. Errors name the file and line: a line that is not a JSON
// object, a missing or non-string field, an empty prompt or response, a response holding "\n".
std::vector<InstructExample> load_instruct_jsonl(const std::filesystem::path& path);

struct InstructData {
  std::filesystem::path folder;
  std::vector<FamilyInfo> families;  // in families.json's order
  std::vector<InstructExample> train, test;
  const FamilyInfo& family(std::string_view name) const;  // errors naming the known families
};

// Whether `folder` holds instruction data (a train.jsonl) rather than a corpus.
bool is_instruct_folder(const std::filesystem::path& folder);
// Loads the three files; every example's family must be in families.json with the same cluster,
// and no held-out family may appear in train.jsonl. Errors name the file.
InstructData load_instruct_data(const std::filesystem::path& folder);
// The examples of the families in `csv` (a comma list; "" keeps all). Errors name `what` and an
// unknown family.
std::vector<InstructExample> select_families(const InstructData& data,
                                             const std::vector<InstructExample>& examples,
                                             std::string_view csv, std::string_view what);

// An example's tokens: the prompt part (instruct_prompt) then the response part. The response
// part's tokens are the scored ones.
struct InstructTokens {
  std::vector<int32_t> ids;
  int64_t prompt = 0;  // how many of ids belong to the prompt part
};
InstructTokens tokenize_instruct(const Tokenizer& tokenizer, const InstructExample& e);

// One row per example, right-padded to T with id 0: inputs ids[0, L-1), targets ids[1, L), where
// a target is scored (else kIgnoreTarget) when it is a response token, i.e. at position t with
// t + 1 >= prompt. Errors when an example's L - 1 exceeds T, naming its length and the context.
EvalBatch instruct_batch(const std::vector<const InstructTokens*>& rows, int64_t T,
                         Device device = Device::cpu());

// Random fine-tuning batches: each row an example drawn uniformly (with replacement) by the
// batcher's own generator, so the draws depend only on the seed, B and the number of examples.
class InstructBatcher {
 public:
  InstructBatcher(std::vector<InstructTokens> examples, uint64_t seed);
  std::pair<Tensor, Tensor> next(int64_t B, int64_t T, Device device = Device::cpu());
  BatcherState state() const { return {gen_.state(), batches_}; }
  void set_state(const BatcherState& s);
  int64_t size() const { return static_cast<int64_t>(examples_.size()); }

 private:
  std::vector<InstructTokens> examples_;
  Generator gen_;
  int64_t batches_ = 0;
};

// Teacher-forced response loss of each example: its summed nats over the scored tokens and their
// count, in batches of B rows, in eval mode under no_grad (the training mode is restored). With
// `comm`, every rank calls it, runs every R-th batch, and all get every example's loss.
struct ResponseLoss {
  double nats = 0;
  int64_t tokens = 0;
};
std::vector<ResponseLoss> response_losses(nn::Transformer& model,
                                          const std::vector<InstructTokens>& examples, int64_t B,
                                          Communicator* comm = nullptr);

}  // namespace monet
