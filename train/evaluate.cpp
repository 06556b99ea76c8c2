#include "train/evaluate.h"

#include <fmt/format.h>

#include <cmath>

#include "core/autograd.h"
#include "core/ops.h"

namespace monet {

DomainEval evaluate_tokens(nn::Transformer& model, const std::string& name,
                           const std::vector<int32_t>& tokens, int64_t batch, int64_t context,
                           int64_t max_windows, const EvalProgress& progress,
                           const Tokenizer& tokenizer, Communicator* comm) {
  NoGradGuard ng;
  const bool was_training = model.is_training();
  model.eval();
  int64_t scored = 0, bytes = 0;
  const std::vector<EvalBatch> batches =
      eval_batches(tokens, batch, context, max_windows, model.config().device);
  const int64_t total = static_cast<int64_t>(batches.size());
  std::vector<double> batch_nats(batches.size(), 0.0);  // Σ token losses of each batch
  for (int64_t i = 0; i < total; ++i) {
    const EvalBatch& b = batches[static_cast<size_t>(i)];
    if (b.scored > 0) {
      if (!comm || comm->owns(i)) {
        Tensor logits = model.forward(b.inputs);
        batch_nats[static_cast<size_t>(i)] =
            cross_entropy(logits, b.targets, kIgnoreTarget).item() * static_cast<double>(b.scored);
      }
      scored += b.scored;
      for (int32_t id : b.targets.to(Device::cpu()).to_vector<int32_t>())
        if (id != kIgnoreTarget) bytes += tokenizer.token_bytes(id);
    }
    if (progress) progress(i + 1, total, name);
  }
  model.train(was_training);
  // Each batch's sum from the rank that ran it (the others hold 0, which adds exactly), then the
  // total in batch order: the same number on every rank and in one process.
  if (comm) comm->all_reduce_sum(batch_nats.data(), total);
  double nats = 0;
  for (double v : batch_nats) nats += v;
  DomainEval e{name, scored ? nats / static_cast<double>(scored) : 0.0, 0.0, scored, bytes};
  e.bpb = bytes ? nats / std::log(2.0) / static_cast<double>(bytes) : 0.0;
  return e;
}

std::vector<DomainEval> evaluate(nn::Transformer& model, const std::vector<Domain>& domains,
                                 int64_t batch, int64_t context, int64_t max_windows,
                                 const EvalProgress& progress, const Tokenizer& tokenizer,
                                 Communicator* comm) {
  std::vector<DomainEval> out;
  DomainEval all{"all", 0, 0, 0, 0};
  double nats = 0;
  for (const Domain& d : domains) {
    out.push_back(evaluate_tokens(model, d.name, d.val, batch, context, max_windows, progress,
                                  tokenizer, comm));
    nats += out.back().loss * static_cast<double>(out.back().tokens);
    all.tokens += out.back().tokens;
    all.bytes += out.back().bytes;
  }
  if (all.tokens) all.loss = nats / static_cast<double>(all.tokens);
  if (all.bytes) all.bpb = nats / std::log(2.0) / static_cast<double>(all.bytes);
  out.push_back(all);
  return out;
}

std::string eval_markdown(const std::vector<DomainEval>& ev) {
  std::string s =
      "| domain | val loss (nats/token) | bits per byte | tokens |\n|---|---:|---:|---:|\n";
  for (const DomainEval& e : ev)
    s += fmt::format("| {} | {:.4f} | {:.4f} | {} |\n", e.domain, e.loss, e.bpb, e.tokens);
  return s;
}

nlohmann::json eval_json(const std::vector<DomainEval>& ev) {
  nlohmann::json j = nlohmann::json::array();
  for (const DomainEval& e : ev)
    j.push_back({{"domain", e.domain},
                 {"loss", e.loss},
                 {"bpb", e.bpb},
                 {"tokens", e.tokens},
                 {"bytes", e.bytes}});
  return j;
}

}  // namespace monet
