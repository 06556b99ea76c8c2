// Expert parallel training (issue #19, run.expert_parallel): on R ranks, each SMoE layer keeps
// E/R of its experts (moe::SmoeFeedForward::shard_experts) and sends every token to the rank of
// each expert it is routed to (monet/expert_parallel.h); the router, attention and the rest of the
// model stay data parallel (train/data_parallel.h).
//
// A sharded parameter's gradient is whole on its rank (every token routed to those experts came
// to it), so it is not summed over the ranks; the gradient norm adds the shards' squared norms.
// Checkpoints stay those of one process: the shards of the weights and of the optimizer state are
// gathered to full tensors for rank 0 to write, and cut again when a run resumes, so a checkpoint
// written on R ranks resumes on any count that divides E, or in one process.
//
// Only SMoE has an expert-parallel form. MONET's experts are products of two halves of √N
// sub-experts, so its parameters grow as √N and it trains data parallel (README, "Training on
// several processes").
#pragma once
#include <string>
#include <vector>

#include "core/comm.h"
#include "nn/transformer.h"

namespace monet {

struct ExpertShards {
  struct Entry {
    std::string name;               // the parameter, as model.named_parameters() names it
    int64_t experts, first, count;  // E, and this rank's rows [first, first + count)
  };
  std::vector<Entry> params;
  bool empty() const { return params.empty(); }
  // Whether `name` (a parameter, or an optimizer state "exp_avg.<parameter>") is sharded.
  const Entry* find(const std::string& name) const;
};

// Shards every SMoE layer of `model` over comm's ranks. Errors name run.expert_parallel when the
// model has no SMoE layer (`kind`: the config's ffn kind, for the message) or R does not divide E.
ExpertShards shard_experts(nn::Transformer& model, Communicator& comm, const std::string& kind);

// Full tensors (model weights or optimizer state) cut to this rank's rows where sharded; the
// others as they are.
nn::NamedTensors cut_to_shards(const nn::NamedTensors& full, const ExpertShards& shards);
// This rank's tensors made whole: each sharded one gathered over the ranks (collective: every rank
// calls it with the same names); the others as they are.
nn::NamedTensors gather_shards(const nn::NamedTensors& local, const ExpertShards& shards,
                               Communicator& comm);

// The gradient norm over all ranks' parameters, ‖g‖ = √(‖replicated‖² + Σ_ranks ‖shard‖²), and
// the clip of nn::clip_grad_norm with it. Returns ‖g‖ before clipping.
double clip_grad_norm_sharded(const nn::NamedTensors& replicated, const nn::NamedTensors& sharded,
                              double max_norm, Communicator& comm);

}  // namespace monet
