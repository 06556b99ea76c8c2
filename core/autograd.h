// Reverse-mode autodiff, micrograd-sized.
//
// Every differentiable op calls `record(out, name, inputs, backward)` after its forward kernel. The
// Node keeps the inputs (so the graph stays alive while `out` does) and a closure that maps the
// gradient of `out` to one gradient per input, written with other ops so it runs on any backend.
// `Tensor::backward` walks the nodes in reverse topological order, found iteratively (no
// recursion, so a graph of a million nodes cannot overflow the stack), sums the gradients of a
// tensor used several times, and accumulates leaf gradients into `.grad`. Destroying a graph is
// iterative too (Node::~Node).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace monet {

using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_out)>;

struct Node {
  Node() = default;
  // Releases what the node holds without recursing: a chain of a million nodes, each the last
  // owner of the next, is freed in a loop instead of a million nested destructors (autograd.cpp).
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  std::string name;            // the op, for error messages ("matmul", "softmax", ...)
  std::vector<Tensor> inputs;  // edges to the tensors this node differentiates into
  BackwardFn backward;         // grad_out -> one grad per input (undefined = no gradient)
  std::string flop_category;   // the FlopScope active at forward time, reused by backward
  // Optional, for view ops with one input (slice): add this node's gradient into its input's
  // gradient `slot` in place (creating it when undefined) instead of returning a full-size one.
  // The engine calls it only with a slot it owns (no other tensor aliases it).
  std::function<void(Tensor& slot, const Tensor& grad_out)> accumulate;
  // True when input i wants a gradient; closures use it to skip work.
  bool needs(size_t i) const { return inputs[i].defined() && inputs[i].requires_grad(); }
};

// Grad mode is per thread, as in PyTorch. NoGradGuard disables recording in its scope.
bool grad_enabled();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// True when grad mode is on and one of `inputs` requires a gradient.
bool any_requires_grad(const std::vector<Tensor>& inputs);

// Attach `fn` as the grad_fn of `out` when any input requires grad (and grad mode is on).
// Closures must not capture `out` itself (that is a cycle): capture `out.detach()` instead.
void record(Tensor& out, const char* name, std::vector<Tensor> inputs, BackwardFn fn);

// The backward sweep behind Tensor::backward.
void run_backward(const Tensor& root, const Tensor& grad);

}  // namespace monet
