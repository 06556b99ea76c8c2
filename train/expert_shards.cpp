#include "train/expert_shards.h"

#include <fmt/format.h>

#include <cmath>

#include "core/autograd.h"
#include "core/ops.h"
#include "monet/smoe.h"
#include "nn/optim.h"

namespace monet {

const ExpertShards::Entry* ExpertShards::find(const std::string& name) const {
  for (const Entry& e : params) {
    const bool ends = name.size() > e.name.size() &&
                      name.compare(name.size() - e.name.size(), e.name.size(), e.name) == 0 &&
                      name[name.size() - e.name.size() - 1] == '.';
    if (name == e.name || ends) return &e;
  }
  return nullptr;
}

ExpertShards shard_experts(nn::Transformer& model, Communicator& comm, const std::string& kind) {
  ExpertShards out;
  const nn::NamedTensors before = model.named_parameters();
  for (const auto& block : model.blocks()) {
    auto* smoe = dynamic_cast<moe::SmoeFeedForward*>(&block->ffn());
    if (smoe == nullptr) continue;
    const int64_t E = smoe->num_experts();
    MONET_CHECK(E % comm.size() == 0,
                "config key 'run.expert_parallel': {} experts do not split evenly over {} ranks", E,
                comm.size());
    // The names of w1 and w2 before the layer replaces them.
    std::vector<std::string> names;
    for (const Tensor& w : {smoe->expert_weights().w1, smoe->expert_weights().w2})
      for (const auto& [name, p] : before)
        if (&p.impl() == &w.impl()) names.push_back(name);
    MONET_CHECK(names.size() == 2, "shard_experts: the SMoE expert weights are not parameters");
    const moe::ExpertShard s = smoe->shard_experts(comm);
    for (const std::string& n : names) out.params.push_back({n, E, s.first, s.count});
  }
  MONET_CHECK(!out.empty(),
              "config key 'run.expert_parallel' = true: the model has no SMoE layer (ffn kind "
              "'{}'); only SMoE shards its experts — train the others data parallel",
              kind);
  return out;
}

nn::NamedTensors cut_to_shards(const nn::NamedTensors& full, const ExpertShards& shards) {
  nn::NamedTensors out;
  for (const auto& [name, t] : full) {
    const ExpertShards::Entry* e = shards.find(name);
    if (e == nullptr || t.dim() == 0 || t.size(0) != e->experts) {  // e.g. AdamW's step count
      out.emplace_back(name, t);
      continue;
    }
    out.emplace_back(name, moe::shard_rows(t, {e->first, e->count}));
  }
  return out;
}

nn::NamedTensors gather_shards(const nn::NamedTensors& local, const ExpertShards& shards,
                               Communicator& comm) {
  nn::NamedTensors out;
  for (const auto& [name, t] : local) {
    const ExpertShards::Entry* e = shards.find(name);
    if (e == nullptr || t.dim() == 0 || t.size(0) != e->count) {
      out.emplace_back(name, t);
      continue;
    }
    // Each rank writes its rows into zeros and the sum over the ranks assembles the whole (adding
    // zeros is exact).
    NoGradGuard ng;
    Shape shape = t.shape();
    shape[0] = e->experts;
    Tensor whole = zeros(shape, t.dtype(), Device::cpu());
    copy_(slice(whole, 0, e->first, e->first + e->count), t.to(Device::cpu()));
    comm.all_reduce_sum(whole);
    out.emplace_back(name, whole);
  }
  return out;
}

double clip_grad_norm_sharded(const nn::NamedTensors& replicated, const nn::NamedTensors& sharded,
                              double max_norm, Communicator& comm) {
  double shards = nn::grad_norm_squared(sharded);
  comm.all_reduce_sum(&shards, 1);
  const double norm = std::sqrt(nn::grad_norm_squared(replicated) + shards);
  nn::clip_grads(replicated, norm, max_norm);
  nn::clip_grads(sharded, norm, max_norm);
  return norm;
}

}  // namespace monet
