// `monet instruct-eval`: how well a model follows the instructions of an instruction-data folder
// (train/instruct.h), per task family, per cluster, and held-in against held-out families — the
// FLAN protocol's zero-shot test on unseen task clusters (arXiv 2210.11416, FLAN-MoE 2305.14705).
//
// For each example the model reads instruct_prompt(e) and answers greedily (temperature 0, with a
// KV cache) until it writes "\n" or max_new tokens; the answer is the text before the first "\n".
// Exact match: the answer equals the response, byte for byte (no normalisation of case or spaces).
// The response loss is the teacher-forced loss on response + "\n" (nats per token), which moves
// even where accuracy sits at 0.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nn/transformer.h"
#include "train/instruct.h"
#include "train/tokenizer.h"

namespace monet {

struct InstructEvalOptions {
  std::string split = "test";  // test | train
  std::string families;        // comma list; "" = every family of the split
  int64_t limit = 0;           // examples per family (the first ones); 0 = all
  int64_t max_new = 32;        // the longest answer generated, in tokens
  int64_t batch = 16;          // rows per forward of the response loss
};

// One family, one cluster, or a pooled group (held-in, held-out, all).
struct InstructScore {
  std::string name, cluster;
  bool held_out = false;
  int64_t examples = 0, correct = 0, tokens = 0;
  double nats = 0;
  double accuracy() const;  // correct / examples
  double loss() const;      // nats / tokens
  void add(const InstructScore& o);
};

struct InstructPrediction {
  std::string family, prompt, expected, answer;
  bool correct = false;
};

struct InstructEvalResult {
  std::string split;
  std::vector<InstructScore> families, clusters;  // in families.json's order
  InstructScore held_in, held_out, all;
  std::vector<InstructPrediction> predictions;
};

// The answer in generated text: everything before the first "\n" (all of it without one).
std::string answer_of(const std::string& generated);
// Greedy decoding of at most max_new tokens after `prompt` (stopping early at a "\n", or when the
// context is full); returns the decoded answer (answer_of).
std::string greedy_answer(nn::Transformer& model, const Tokenizer& tokenizer,
                          const std::vector<int32_t>& prompt, int64_t max_new);

// Called after each family: families done, total, the family's score.
using InstructProgress = std::function<void(int64_t done, int64_t total, const InstructScore&)>;
InstructEvalResult instruct_eval(nn::Transformer& model, const Tokenizer& tokenizer,
                                 const InstructData& data, const InstructEvalOptions& opt,
                                 const InstructProgress& progress = nullptr);

// Markdown: per family, per cluster, then held-in / held-out / all; JSON: the same at full
// precision plus every prediction. write_instruct_outputs writes instruct_eval.{md,json} to `dir`.
std::string instruct_markdown(const InstructEvalResult& r);
nlohmann::json instruct_json(const InstructEvalResult& r);
void write_instruct_outputs(const InstructEvalResult& r, const std::filesystem::path& dir);

}  // namespace monet
