// Validation loss and bits per byte, per domain and over all domains together.
//
// bits per byte = (Σ token losses in nats) / ln 2 / (bytes of the scored text), the bytes being
// the tokenizer's token_bytes of each scored token, so models with different tokenizers compare on
// the same text. With the byte tokenizer a token is a byte, so bpb = mean loss / ln 2.
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/comm.h"
#include "nn/transformer.h"
#include "train/corpus.h"
#include "train/tokenizer.h"

namespace monet {

struct DomainEval {
  std::string domain;
  double loss = 0;     // mean nats per scored token
  double bpb = 0;      // bits per byte
  int64_t tokens = 0;  // scored tokens
  int64_t bytes = 0;   // the bytes of text they stand for
};

// Called after each batch: batches done and total of the token vector being evaluated, and its
// name (a domain's).
using EvalProgress = std::function<void(int64_t done, int64_t total, const std::string& name)>;

// One line per domain, then "all" (weighted by scored tokens). Runs in eval mode under no_grad
// and restores the model's training mode afterwards. max_windows caps the windows per domain.
// With `comm` (data parallel training), every rank calls it and runs every R-th batch; all get
// the result one process would, bit for bit.
std::vector<DomainEval> evaluate(nn::Transformer& model, const std::vector<Domain>& domains,
                                 int64_t batch, int64_t context, int64_t max_windows,
                                 const EvalProgress& progress = nullptr,
                                 const Tokenizer& tokenizer = byte_tokenizer(),
                                 Communicator* comm = nullptr);

// Loss and bpb of one token vector (a domain's val split or any text).
DomainEval evaluate_tokens(nn::Transformer& model, const std::string& name,
                           const std::vector<int32_t>& tokens, int64_t batch, int64_t context,
                           int64_t max_windows, const EvalProgress& progress = nullptr,
                           const Tokenizer& tokenizer = byte_tokenizer(),
                           Communicator* comm = nullptr);

// The results as a Markdown table: domain, val loss (nats/token), bits per byte, tokens (4
// decimals), and as JSON for scripts: [{"domain", "loss", "bpb", "tokens", "bytes"}, ...] at full
// precision.
std::string eval_markdown(const std::vector<DomainEval>& ev);
nlohmann::json eval_json(const std::vector<DomainEval>& ev);

}  // namespace monet
