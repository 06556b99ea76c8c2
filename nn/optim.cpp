#include "nn/optim.h"

#include <cmath>
#include <numbers>

#include "core/autograd.h"
#include "core/cpu/parallel.h"
#include "core/kernel_path.h"
#include "core/ops.h"

namespace monet::nn {

const NameTable<OptimizerKind>& optimizer_kinds() {
  static const NameTable<OptimizerKind> t(
      "optimizer", {{OptimizerKind::AdamW, "adamw"}, {OptimizerKind::SGD, "sgd"}});
  return t;
}

namespace {

// The parameter's gradient, dense and checked; undefined when backward gave it none.
Tensor dense_grad(const char* op, const std::string& name, const Tensor& p) {
  Tensor g = p.grad();
  if (!g.defined()) return g;
  MONET_CHECK(g.shape() == p.shape() && g.dtype() == p.dtype(),
              "{}: gradient of '{}' is {} {}, the parameter {} {}", op, name, dtype_name(g.dtype()),
              shape_str(g.shape()), dtype_name(p.dtype()), shape_str(p.shape()));
  return g.contiguous();
}

// Runs `update(p, g, state...)` (typed pointers, n elements) on a dense CPU copy of the parameter
// when it is not dense itself, and writes it back.
template <class F>
void update_dense(const char* op, const std::string& name, const Tensor& p, const Tensor& g,
                  const std::vector<Tensor>& state, F update) {
  MONET_CHECK(p.device().is_cpu(), "{}: parameter '{}' is on {}; only CPU updates are implemented",
              op, name, p.device().str());
  Tensor work = p.is_contiguous() ? p : p.contiguous();
  MONET_SWITCH_FLOAT(p.dtype(), op, [&] {
    using T = scalar_t;
    std::vector<T*> s;
    for (const Tensor& t : state) s.push_back(t.data<T>());
    update(work.data<T>(), g.data<T>(), s, p.numel());
  });
  if (!work.same(p)) copy_(p, work);
}

Tensor state_like(const Tensor& p) {
  return zeros(p.shape(), p.dtype(), p.device());
}

}  // namespace

Optimizer::Optimizer(NamedTensors params) : params_(std::move(params)) {
  for (const auto& [name, p] : params_)
    MONET_CHECK(p.defined() && p.requires_grad(), "Optimizer: '{}' is not a trainable parameter",
                name);
}

void Optimizer::zero_grad() {
  for (auto& [name, p] : params_) p.set_grad(Tensor());
}

void Optimizer::load_state_dict(const NamedTensors& state) {
  NamedTensors mine = state_dict();
  MONET_CHECK(state.size() == mine.size(),
              "load_state_dict: {} tensors given, the optimizer has {}", state.size(), mine.size());
  for (const auto& [name, dst] : mine) {
    const Tensor* src = nullptr;
    for (const auto& [n, t] : state)
      if (n == name) src = &t;
    MONET_CHECK(src != nullptr, "load_state_dict: '{}' is missing", name);
    MONET_CHECK(src->shape() == dst.shape() && src->dtype() == dst.dtype(),
                "load_state_dict: '{}' is {} {}, expected {} {}", name, dtype_name(src->dtype()),
                shape_str(src->shape()), dtype_name(dst.dtype()), shape_str(dst.shape()));
    copy_(dst, *src);
  }
}

// ---- AdamW ----

bool default_decays(const std::string& name, const Tensor& p) {
  return p.dim() != 1 && name.find("embed") == std::string::npos;
}

AdamW::AdamW(NamedTensors params, AdamWOptions opt)
    : Optimizer(std::move(params)), opt_(std::move(opt)) {
  for (const auto& [name, p] : params_) {
    decay_.push_back(opt_.decays ? opt_.decays(name, p) : default_decays(name, p));
    step_.push_back(zeros({1}, DType::F64));
    exp_avg_.push_back(state_like(p));
    exp_avg_sq_.push_back(state_like(p));
  }
}

void AdamW::step() {
  NoGradGuard ng;
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& [name, p] = params_[i];
    Tensor g = dense_grad("AdamW", name, p);
    if (!g.defined()) continue;
    double& t = step_[i].data<double>()[0];
    t += 1;
    const double b1 = opt_.beta1, b2 = opt_.beta2, eps = opt_.eps, lr = opt_.lr;
    const double decay = decay_[i] ? 1.0 - lr * opt_.weight_decay : 1.0;
    const double step_size = lr / (1.0 - std::pow(b1, t));     // lr / (1 − β₁ᵗ)
    const double sqrt_bc2 = std::sqrt(1.0 - std::pow(b2, t));  // √(1 − β₂ᵗ)
    if (!use_fused_kernel(p.device())) {  // the same update written with ops (core/kernel_path.h)
      Tensor& m = exp_avg_[i];
      Tensor& v = exp_avg_sq_[i];
      copy_(m, add(mul(m, b1), mul(g, 1.0 - b1)));
      copy_(v, add(mul(v, b2), mul(mul(g, g), 1.0 - b2)));
      Tensor denom = add(mul(sqrt(v), 1.0 / sqrt_bc2), eps);
      copy_(p, sub(mul(p, decay), mul(div(m, denom), step_size)));
      continue;
    }
    update_dense("AdamW", name, p, g, {exp_avg_[i], exp_avg_sq_[i]},
                 [&]<class T>(T* pp, const T* pg, const std::vector<T*>& s, int64_t n) {
                   T *m = s[0], *v = s[1];
                   cpu::parallel_for(n, cpu::kElementGrain, [&](int64_t j0, int64_t j1) {
                     for (int64_t j = j0; j < j1; ++j) {
                       const double gj = pg[j];
                       const double mj = b1 * m[j] + (1.0 - b1) * gj;
                       const double vj = b2 * v[j] + (1.0 - b2) * gj * gj;
                       m[j] = static_cast<T>(mj);
                       v[j] = static_cast<T>(vj);
                       const double denom = std::sqrt(static_cast<double>(v[j])) / sqrt_bc2 + eps;
                       pp[j] = static_cast<T>(pp[j] * decay - step_size * m[j] / denom);
                     }
                   });
                 });
  }
}

NamedTensors AdamW::state_dict() const {
  NamedTensors out;
  for (size_t i = 0; i < params_.size(); ++i) {
    const std::string& name = params_[i].first;
    out.emplace_back("step." + name, step_[i]);
    out.emplace_back("exp_avg." + name, exp_avg_[i]);
    out.emplace_back("exp_avg_sq." + name, exp_avg_sq_[i]);
  }
  return out;
}

// ---- SGD ----

SGD::SGD(NamedTensors params, SGDOptions opt) : Optimizer(std::move(params)), opt_(opt) {
  MONET_CHECK(opt.momentum >= 0 && opt.momentum < 1, "SGD: momentum {} outside [0, 1)",
              opt.momentum);
  for (const auto& [name, p] : params_)
    momentum_.push_back(opt.momentum > 0 ? state_like(p) : Tensor());
}

void SGD::step() {
  NoGradGuard ng;
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& [name, p] = params_[i];
    Tensor g = dense_grad("SGD", name, p);
    if (!g.defined()) continue;
    const double lr = opt_.lr, mu = opt_.momentum, wd = opt_.weight_decay;
    const bool has_buf = momentum_[i].defined();
    if (!use_fused_kernel(p.device())) {  // the same update written with ops (core/kernel_path.h)
      Tensor d = add(g, mul(p, wd));
      if (has_buf) {
        copy_(momentum_[i], add(mul(momentum_[i], mu), d));
        d = momentum_[i];
      }
      copy_(p, sub(p, mul(d, lr)));
      continue;
    }
    std::vector<Tensor> state;
    if (has_buf) state.push_back(momentum_[i]);
    update_dense("SGD", name, p, g, state,
                 [&]<class T>(T* pp, const T* pg, const std::vector<T*>& s, int64_t n) {
                   for (int64_t j = 0; j < n; ++j) {
                     double d = pg[j] + wd * pp[j];  // g + λp
                     if (has_buf) {
                       s[0][j] = static_cast<T>(mu * s[0][j] + d);  // b ← μb + g
                       d = s[0][j];
                     }
                     pp[j] = static_cast<T>(pp[j] - lr * d);
                   }
                 });
  }
}

NamedTensors SGD::state_dict() const {
  NamedTensors out;
  for (size_t i = 0; i < params_.size(); ++i)
    if (momentum_[i].defined())
      out.emplace_back("momentum_buffer." + params_[i].first, momentum_[i]);
  return out;
}

// ---- clipping and schedule ----

namespace {

double sum_of_squares(const std::vector<Tensor>& params) {
  NoGradGuard ng;
  double ss = 0;
  for (const Tensor& p : params) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    if (!use_fused_kernel(g.device())) {  // one reduction with ops, one number back
      ss += sum(mul(g, g)).item();
      continue;
    }
    g = g.contiguous();
    MONET_SWITCH_FLOAT(g.dtype(), "clip_grad_norm", [&] {
      const scalar_t* pg = g.data<scalar_t>();
      ss += cpu::parallel_sum(g.numel(), cpu::kElementGrain, [&](int64_t j0, int64_t j1) {
        double acc = 0;
        for (int64_t j = j0; j < j1; ++j) acc += static_cast<double>(pg[j]) * pg[j];
        return acc;
      });
    });
  }
  return ss;
}

void scale_to(const std::vector<Tensor>& params, double norm, double max_norm) {
  if (norm <= max_norm) return;
  NoGradGuard ng;
  const double scale = max_norm / (norm + 1e-6);
  for (const Tensor& p : params)
    if (p.grad().defined()) p.set_grad(mul(p.grad(), scale));
}

std::vector<Tensor> tensors_of(const NamedTensors& params) {
  std::vector<Tensor> ps;
  for (const auto& [name, p] : params) ps.push_back(p);
  return ps;
}

}  // namespace

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  const double norm = std::sqrt(sum_of_squares(params));
  scale_to(params, norm, max_norm);
  return norm;
}

double clip_grad_norm(const NamedTensors& params, double max_norm) {
  return clip_grad_norm(tensors_of(params), max_norm);
}

double grad_norm_squared(const NamedTensors& params) {
  return sum_of_squares(tensors_of(params));
}

void clip_grads(const NamedTensors& params, double norm, double max_norm) {
  scale_to(tensors_of(params), norm, max_norm);
}

double scheduled_lr(const LrSchedule& s, int64_t step) {
  MONET_CHECK(s.warmup_steps >= 0 && s.total_steps > s.warmup_steps,
              "LrSchedule: need 0 ≤ warmup_steps ({}) < total_steps ({})", s.warmup_steps,
              s.total_steps);
  if (step < s.warmup_steps)
    return s.max_lr * static_cast<double>(step + 1) / static_cast<double>(s.warmup_steps);
  if (step >= s.total_steps) return s.min_lr;
  const double r = static_cast<double>(step - s.warmup_steps) /
                   static_cast<double>(s.total_steps - s.warmup_steps);
  return s.min_lr + 0.5 * (1.0 + std::cos(std::numbers::pi * r)) * (s.max_lr - s.min_lr);
}

}  // namespace monet::nn
