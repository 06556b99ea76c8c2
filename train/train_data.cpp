#include "train/train_data.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "train/instruct.h"
#include "train/tokenizer.h"

namespace monet {

namespace {

class CorpusData final : public TrainData {
 public:
  explicit CorpusData(const Config& cfg)
      : corpus_(Corpus::load(cfg.run.data, byte_tokenizer())),
        batcher_(corpus_.train_stream(), cfg.run.seed + 1) {}
  std::string describe() const override {
    return fmt::format("{} ({} train tokens)", corpus_.folder().string(), batcher_.tokens());
  }
  std::pair<Tensor, Tensor> next(int64_t B, int64_t T, Device device) override {
    return batcher_.next(B, T, device);
  }
  BatcherState state() const override { return batcher_.state(); }
  void set_state(const BatcherState& s) override { batcher_.set_state(s); }
  std::vector<DomainEval> evaluate(nn::Transformer& model, int64_t B, int64_t T,
                                   int64_t max_windows, Communicator* comm) override {
    return monet::evaluate(model, corpus_.domains(), B, T, max_windows, nullptr, byte_tokenizer(),
                           comm);
  }

 private:
  Corpus corpus_;
  Batcher batcher_;
};

std::vector<InstructTokens> tokenize_all(const std::vector<InstructExample>& examples) {
  std::vector<InstructTokens> out(examples.size());
  std::transform(examples.begin(), examples.end(), out.begin(),
                 [](const InstructExample& e) { return tokenize_instruct(byte_tokenizer(), e); });
  return out;
}

class InstructionData final : public TrainData {
 public:
  explicit InstructionData(const Config& cfg)
      : data_(load_instruct_data(cfg.run.data)),
        batcher_(tokenize_all(select_families(data_, data_.train, cfg.finetune.families,
                                              "config key 'finetune.families'")),
                 cfg.run.seed + 1),
        test_(tokenize_all(data_.test)),
        families_(cfg.finetune.families.empty() ? "all families" : cfg.finetune.families) {}
  std::string describe() const override {
    return fmt::format("{} (instructions: {} train examples of {}, {} test examples)",
                       data_.folder.string(), batcher_.size(), families_, test_.size());
  }
  std::pair<Tensor, Tensor> next(int64_t B, int64_t T, Device device) override {
    return batcher_.next(B, T, device);
  }
  BatcherState state() const override { return batcher_.state(); }
  void set_state(const BatcherState& s) override { batcher_.set_state(s); }
  // The response loss per cluster of test.jsonl, then "all" (token-weighted).
  std::vector<DomainEval> evaluate(nn::Transformer& model, int64_t B, int64_t /*T*/,
                                   int64_t /*max_windows*/, Communicator* comm) override {
    const std::vector<ResponseLoss> losses = response_losses(model, test_, B, comm);
    std::map<std::string, DomainEval> by_cluster;
    DomainEval all{"all", 0, 0, 0, 0};
    for (size_t i = 0; i < losses.size(); ++i) {
      DomainEval& c = by_cluster[data_.test[i].cluster];
      for (DomainEval* e : {&c, &all}) {
        e->loss += losses[i].nats;  // summed here, divided below
        e->tokens += losses[i].tokens;
      }
    }
    std::vector<DomainEval> out;
    for (auto& [name, e] : by_cluster) out.push_back(e), out.back().domain = name;
    out.push_back(all);
    for (DomainEval& e : out) {  // byte tokens: one byte each
      e.bytes = e.tokens;
      e.loss = e.tokens ? e.loss / static_cast<double>(e.tokens) : 0.0;
      e.bpb = e.loss / std::log(2.0);
    }
    return out;
  }

 private:
  InstructData data_;
  InstructBatcher batcher_;
  std::vector<InstructTokens> test_;
  std::string families_;
};

}  // namespace

std::unique_ptr<TrainData> open_train_data(const Config& cfg) {
  if (is_instruct_folder(cfg.run.data)) return std::make_unique<InstructionData>(cfg);
  MONET_CHECK(cfg.finetune.families.empty(),
              "config key 'finetune.families' = '{}' needs instruction data, but run.data = '{}' "
              "holds no train.jsonl",
              cfg.finetune.families, cfg.run.data);
  return std::make_unique<CorpusData>(cfg);
}

}  // namespace monet
