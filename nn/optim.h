// Optimizers, gradient clipping and the learning-rate schedule.
//
// AdamW (Loshchilov & Hutter, decoupled weight decay), per parameter p with gradient g, as PyTorch:
//   t ← t + 1
//   p ← p·(1 − lr·λ)                                   (only for parameters that decay)
//   m ← β₁m + (1 − β₁)g,   v ← β₂v + (1 − β₂)g²
//   p ← p − lr · (m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε)
// SGD:  b ← μb + g (when μ > 0),  p ← p − lr·(b or g),  with L2 weight decay g ← g + λp.
// Parameters whose gradient is undefined are skipped (their step count does not advance).
//
// The state is exposed as named tensors so a checkpoint can save it and a resumed run continue
// bit for bit: for each parameter "<name>", AdamW has "step.<name>" (F64, shape [1]),
// "exp_avg.<name>" and "exp_avg_sq.<name>" (the parameter's shape and dtype); SGD with momentum has
// "momentum_buffer.<name>". state_dict() returns the live tensors (no copies); load_state_dict()
// copies into them and requires exactly the same names, shapes and dtypes.
//
// Updates run under NoGradGuard and write the parameters in place, one tight loop per contiguous
// CPU tensor (F32 or F64; the arithmetic is done in double and rounded once).
#pragma once
#include "core/names.h"
#include <functional>
#include <string>
#include <vector>

#include "nn/module.h"

namespace monet::nn {

// The optimizers a run can name (optim.name), with their one name table.
enum class OptimizerKind : uint8_t { AdamW, SGD };
const NameTable<OptimizerKind>& optimizer_kinds();  // adamw, sgd


class Optimizer {
 public:
  explicit Optimizer(NamedTensors params);
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  virtual void step() = 0;
  void zero_grad();  // sets every parameter's gradient undefined
  virtual double lr() const = 0;
  virtual void set_lr(double lr) = 0;

  virtual NamedTensors state_dict() const = 0;
  void load_state_dict(const NamedTensors& state);

  const NamedTensors& params() const { return params_; }

 protected:
  NamedTensors params_;
};

struct AdamWOptions {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.01;  // PyTorch's
  // Which parameters decay; by default all but 1-D tensors (norm gains, biases) and those whose
  // name contains "embed".
  std::function<bool(const std::string& name, const Tensor& p)> decays;
};
bool default_decays(const std::string& name, const Tensor& p);

class AdamW : public Optimizer {
 public:
  AdamW(NamedTensors params, AdamWOptions opt = {});
  void step() override;
  double lr() const override { return opt_.lr; }
  void set_lr(double lr) override { opt_.lr = lr; }
  // β₁, β₂, ε, λ may be changed between steps too.
  AdamWOptions& options() { return opt_; }
  bool decays(size_t i) const { return decay_[i]; }
  NamedTensors state_dict() const override;

 private:
  AdamWOptions opt_;
  std::vector<bool> decay_;
  std::vector<Tensor> step_, exp_avg_, exp_avg_sq_;
};

struct SGDOptions {
  double lr = 1e-2, momentum = 0.0, weight_decay = 0.0;
};

class SGD : public Optimizer {
 public:
  SGD(NamedTensors params, SGDOptions opt = {});
  void step() override;
  double lr() const override { return opt_.lr; }
  void set_lr(double lr) override { opt_.lr = lr; }
  SGDOptions& options() { return opt_; }
  NamedTensors state_dict() const override;  // empty without momentum

 private:
  SGDOptions opt_;
  std::vector<Tensor> momentum_;  // undefined when opt_.momentum == 0 at construction
};

// Scales all gradients by max_norm / (‖g‖ + 1e-6) when the global L2 norm ‖g‖ (over every defined
// gradient) exceeds max_norm, as torch.nn.utils.clip_grad_norm_. Returns ‖g‖ before clipping.
// Gradients are replaced by new tensors, never scaled in place (two leaves may share one).
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);
double clip_grad_norm(const NamedTensors& params, double max_norm);
// Its two halves, for a norm over gradients held apart (expert shards on several processes):
// Σ g² over the defined gradients, and the scaling by max_norm / (norm + 1e-6) when norm >
// max_norm.
double grad_norm_squared(const NamedTensors& params);
void clip_grads(const NamedTensors& params, double norm, double max_norm);

// Linear warm-up then cosine decay to min_lr, as llm.c, for step = 0, 1, 2, ...:
//   step < warmup:          max_lr · (step + 1) / warmup
//   warmup ≤ step < total:  min_lr + ½(1 + cos(π·r))·(max_lr − min_lr),  r = (step − warmup) /
//                           (total − warmup)
//   step ≥ total:           min_lr
struct LrSchedule {
  double max_lr = 1e-3, min_lr = 1e-4;
  int64_t warmup_steps = 0, total_steps = 1;
};
double scheduled_lr(const LrSchedule& s, int64_t step);

}  // namespace monet::nn
