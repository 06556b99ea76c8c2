// Module: the base of every layer, as torch.nn.Module, micrograd-sized.
//
// A module owns named parameters (trained leaves), named buffers (state that is saved but not
// trained, e.g. BatchNorm's running statistics) and named child modules, each kept in
// registration order. named_parameters() walks that order depth first and joins the names with
// dots, so a parameter's name is its path: "layers.3.attn.wq.weight". The names are stable (they
// depend only on the code that builds the model), which is what checkpoints and the optimizer
// state key on.
//
// Initialisation (ParamOptions): weights ~ N(0, init_std²) with init_std = 0.02 (GPT-2), drawn in
// row-major order from the Generator the constructor is given; biases start at 0, norm gains at 1.
// Parameters are created in ParamOptions::dtype (F32 for training, F64 so whole models can be
// gradient-checked) on ParamOptions::device (meta: shapes only, to count paper-sized models).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/random.h"
#include "core/tensor.h"

namespace monet::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

struct ParamOptions {
  DType dtype = DType::F32;
  Device device = Device::cpu();
  double init_std = 0.02;
};

// N(0, opt.init_std²) in opt.dtype on opt.device, drawn from `gen` (nothing is drawn on meta).
Tensor init_normal(const Shape& s, Generator& gen, const ParamOptions& opt);
// A constant tensor (0 for biases, 1 for norm gains).
Tensor init_full(const Shape& s, double value, const ParamOptions& opt);

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Registration. Names are non-empty, contain no '.', and are unique within this module.
  // register_parameter marks `t` (a floating leaf) as requiring grad and returns it.
  Tensor register_parameter(const std::string& name, Tensor t);
  Tensor register_buffer(const std::string& name, Tensor t);
  // Puts `t` in place of this module's own parameter `name` (same place in the order; any shape):
  // for a layer that keeps only part of its weights (expert parallelism keeps a shard).
  Tensor replace_parameter(const std::string& name, Tensor t);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    add_child(name, m);
    return m;
  }

  // Depth first, in registration order, names joined by '.'. A tensor registered twice (tied
  // weights) is listed once, under its first name.
  NamedTensors named_parameters() const;
  std::vector<Tensor> parameters() const;
  NamedTensors named_buffers() const;
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& named_children() const {
    return children_;
  }
  int64_t num_parameters() const;

  // Training mode, applied to this module and all its children.
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Drops every parameter's gradient (sets it undefined; backward then starts afresh).
  void zero_grad();

 private:
  enum class Kind { Parameter, Buffer, Child };
  struct Entry {
    Kind kind;
    std::string name;
    Tensor tensor;                  // Parameter, Buffer
    std::shared_ptr<Module> child;  // Child
  };
  void add_entry(Entry e);
  void add_child(const std::string& name, std::shared_ptr<Module> m);
  void collect(Kind kind, const std::string& prefix, NamedTensors& out) const;

  std::vector<Entry> entries_;  // registration order
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// An ordered list of child modules named "0", "1", ... (the "layers" of a transformer).
class ModuleList : public Module {
 public:
  void push_back(std::shared_ptr<Module> m);
  size_t size() const { return named_children().size(); }
  const std::shared_ptr<Module>& operator[](size_t i) const { return named_children()[i].second; }
};

}  // namespace monet::nn
