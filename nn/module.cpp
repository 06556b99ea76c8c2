#include "nn/module.h"

#include <unordered_set>

#include "core/ops.h"

namespace monet::nn {

Tensor init_normal(const Shape& s, Generator& gen, const ParamOptions& opt) {
  if (opt.device.is_meta()) return empty(s, opt.dtype, opt.device);
  return normal(s, 0.0, opt.init_std, gen, opt.dtype, opt.device);
}

Tensor init_full(const Shape& s, double value, const ParamOptions& opt) {
  return full(s, value, opt.dtype, opt.device);
}

void Module::add_entry(Entry e) {
  MONET_CHECK(!e.name.empty() && e.name.find('.') == std::string::npos,
              "Module: name '{}' must be non-empty and contain no '.'", e.name);
  for (const Entry& o : entries_)
    MONET_CHECK(o.name != e.name, "Module: '{}' is already registered", e.name);
  entries_.push_back(std::move(e));
}

Tensor Module::register_parameter(const std::string& name, Tensor t) {
  MONET_CHECK(t.defined(), "register_parameter: '{}' is an undefined tensor", name);
  MONET_CHECK(t.is_leaf() && is_floating(t.dtype()),
              "register_parameter: '{}' must be a floating leaf tensor, got a {} {}", name,
              dtype_name(t.dtype()), t.is_leaf() ? "leaf" : "non-leaf");
  t.requires_grad_(true);
  add_entry({Kind::Parameter, name, t, nullptr});
  return t;
}

Tensor Module::replace_parameter(const std::string& name, Tensor t) {
  MONET_CHECK(t.defined() && t.is_leaf() && is_floating(t.dtype()),
              "replace_parameter: '{}' needs a defined floating leaf tensor", name);
  for (Entry& e : entries_) {
    if (e.kind != Kind::Parameter || e.name != name) continue;
    t.requires_grad_(true);
    e.tensor = t;
    return t;
  }
  MONET_CHECK(false, "replace_parameter: this module has no parameter '{}'", name);
  return t;
}

Tensor Module::register_buffer(const std::string& name, Tensor t) {
  MONET_CHECK(t.defined(), "register_buffer: '{}' is an undefined tensor", name);
  add_entry({Kind::Buffer, name, t, nullptr});
  return t;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> m) {
  MONET_CHECK(m != nullptr, "register_module: '{}' is null", name);
  MONET_CHECK(m.get() != this, "register_module: '{}' is the module itself", name);
  add_entry({Kind::Child, name, Tensor(), m});
  children_.emplace_back(name, std::move(m));
}

void Module::collect(Kind kind, const std::string& prefix, NamedTensors& out) const {
  for (const Entry& e : entries_) {
    if (e.kind == Kind::Child)
      e.child->collect(kind, prefix + e.name + ".", out);
    else if (e.kind == kind)
      out.emplace_back(prefix + e.name, e.tensor);
  }
}

namespace {
// Keeps the first occurrence of each tensor (tied weights appear once).
NamedTensors dedup(NamedTensors all) {
  std::unordered_set<const TensorImpl*> seen;
  NamedTensors out;
  for (auto& [name, t] : all)
    if (seen.insert(t.impl_ptr().get()).second) out.emplace_back(std::move(name), std::move(t));
  return out;
}
}  // namespace

NamedTensors Module::named_parameters() const {
  NamedTensors all;
  collect(Kind::Parameter, "", all);
  return dedup(std::move(all));
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters()) out.push_back(t);
  return out;
}

NamedTensors Module::named_buffers() const {
  NamedTensors all;
  collect(Kind::Buffer, "", all);
  return dedup(std::move(all));
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (auto& [name, t] : named_parameters()) n += t.numel();
  return n;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, c] : children_) c->train(on);
}

void Module::zero_grad() {
  for (auto& [name, t] : named_parameters()) t.set_grad(Tensor());
}

void ModuleList::push_back(std::shared_ptr<Module> m) {
  register_module(std::to_string(size()), std::move(m));
}

}  // namespace monet::nn
