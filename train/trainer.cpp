#include "train/trainer.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "core/autograd.h"
#include "core/ops.h"
#include "monet/registry.h"
#include "nn/optim.h"
#include "train/checkpoint.h"
#include "train/data_parallel.h"
#include "train/expert_shards.h"
#include "train/model.h"
#include "train/run_folder.h"

namespace monet {

namespace fs = std::filesystem;

std::unique_ptr<nn::Optimizer> make_optimizer(const OptimConfig& o,
                                              const nn::NamedTensors& params) {
  if (o.name == nn::OptimizerKind::SGD)
    return std::make_unique<nn::SGD>(params, nn::SGDOptions{o.lr, 0.0, o.weight_decay});
  nn::AdamWOptions a;
  a.lr = o.lr;
  a.beta1 = o.beta1;
  a.beta2 = o.beta2;
  a.eps = o.eps;
  a.weight_decay = o.weight_decay;
  return std::make_unique<nn::AdamW>(params, a);
}

StepResult train_step(nn::Transformer& model, nn::Optimizer& optimizer,
                      const std::vector<Batch>& batches, double grad_clip, int64_t step,
                      const std::string& stop_note, bool train_aux, const StepComm& comm) {
  MONET_CHECK(!batches.empty(), "train_step: no batch");
  const int64_t R = comm.ranks(), rank = comm.comm ? comm.comm->rank() : 0;
  const int64_t parts = static_cast<int64_t>(batches.size()) * R;  // micro-batches, all ranks
  const double scale = 1.0 / static_cast<double>(parts);
  // lm and aux of micro-batch i of rank r at [2(i·R + r)]: after the sum over the ranks (zeros
  // elsewhere add exactly), every rank has them all, in the order one process would.
  std::vector<double> values(static_cast<size_t>(2 * parts), 0.0);
  StepResult r;
  optimizer.zero_grad();
  for (size_t i = 0; i < batches.size(); ++i) {  // gradients add up over the micro-batches
    const auto& [x, y] = batches[i];
    Tensor lm = cross_entropy(model.forward(x), y);
    Tensor aux = model.aux_loss();
    Tensor loss = aux.defined() && train_aux ? add(lm, aux) : lm;
    const size_t at = static_cast<size_t>(2 * (static_cast<int64_t>(i) * R + rank));
    values[at] = lm.item();
    values[at + 1] = aux.defined() ? aux.item() : 0.0;
    r.has_aux = aux.defined();
    // Every micro-batch runs, finite or not: the ranks' collectives must stay in step.
    (parts == 1 ? loss : mul(loss, scale)).backward();
  }
  if (comm.comm) comm.comm->all_reduce_sum(values.data(), static_cast<int64_t>(values.size()));
  for (int64_t j = 0; j < parts; ++j) {
    const double lm_value = values[static_cast<size_t>(2 * j)];
    const double aux_value = values[static_cast<size_t>(2 * j + 1)];
    MONET_CHECK(std::isfinite(lm_value) && std::isfinite(aux_value),
                "training stopped at step {}: the loss is {} (aux {}); {}", step + 1, lm_value,
                aux_value, stop_note);
    r.lm += scale * lm_value;
    r.aux += scale * aux_value;
  }
  if (comm.comm) all_reduce_gradients(comm.replicated, *comm.comm);
  const double max_norm = grad_clip > 0 ? grad_clip : INFINITY;
  r.grad_norm = comm.sharded.empty()
                    ? nn::clip_grad_norm(optimizer.params(), max_norm)
                    : clip_grad_norm_sharded(comm.replicated, comm.sharded, max_norm, *comm.comm);
  MONET_CHECK(std::isfinite(r.grad_norm),
              "training stopped at step {}: the gradient norm is {}; {}", step + 1, r.grad_norm,
              stop_note);
  optimizer.step();
  return r;
}

StepResult train_step(nn::Transformer& model, nn::Optimizer& optimizer, const Tensor& inputs,
                      const Tensor& targets, double grad_clip, int64_t step,
                      const std::string& stop_note, bool train_aux) {
  return train_step(model, optimizer, {{inputs, targets}}, grad_clip, step, stop_note, train_aux,
                    StepComm{});
}

Trainable trainable_parameters(nn::Module& model, const Config& cfg) {
  const std::vector<moe::ParamGroup> frozen = moe::parse_freeze(cfg.finetune.freeze);
  const moe::FfnKind& kind = *cfg.model.ffn.kind;
  Trainable t;
  std::map<moe::ParamGroup, int64_t> frozen_count;
  int64_t total = 0, trained = 0;
  for (auto& [name, p] : model.named_parameters()) {
    const moe::ParamGroup g = moe::param_group(name, kind);
    total += p.numel();
    if (std::find(frozen.begin(), frozen.end(), g) != frozen.end()) {
      p.requires_grad_(false);
      frozen_count[g] += p.numel();
    } else {
      t.params.emplace_back(name, p);
      trained += p.numel();
    }
  }
  std::vector<std::string> parts;
  for (moe::ParamGroup g : frozen) {
    MONET_CHECK(frozen_count[g] > 0,
                "config key 'finetune.freeze' = '{}': ffn kind '{}' has no {} parameters",
                cfg.finetune.freeze, kind.name, moe::param_group_name(g));
    parts.push_back(fmt::format("{} ({})", moe::param_group_name(g), frozen_count[g]));
  }
  t.note = fmt::format("training {} of {} parameters, frozen: {}", trained, total,
                       parts.empty() ? "none" : fmt::format("{}", fmt::join(parts, ", ")));
  return t;
}

Config resume_config(const fs::path& dir, const std::vector<std::string>& overrides) {
  if (never_checkpointed(dir)) return load_config(dir / "config.json", overrides);
  const fs::path ckpt = resolve_checkpoint(dir);
  return load_config(ckpt / "config.json", overrides);
}

int64_t warmup_for(const Config& cfg) {
  const int64_t w = cfg.optim.warmup_steps, steps = cfg.run.steps;
  return w < steps ? w : steps / 10;
}

}  // namespace monet
