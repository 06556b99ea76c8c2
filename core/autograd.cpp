#include "core/autograd.h"

#include <functional>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "core/flops.h"
#include "core/ops.h"

namespace monet {
namespace {
thread_local bool g_grad_enabled = true;
}

bool grad_enabled() {
  return g_grad_enabled;
}
NoGradGuard::NoGradGuard() : prev_(g_grad_enabled) {
  g_grad_enabled = false;
}
NoGradGuard::~NoGradGuard() {
  g_grad_enabled = prev_;
}

bool any_requires_grad(const std::vector<Tensor>& inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

namespace {

// What a node owns that can own other nodes: its inputs (each tensor's grad_fn) and its closures
// (which capture tensors).
struct NodeEdges {
  std::vector<Tensor> inputs;
  BackwardFn backward;
  std::function<void(Tensor& slot, const Tensor& grad_out)> accumulate;
};

// The work list of the outermost ~Node running on this thread, null when none is. A plain
// pointer, not a thread_local vector: a node may be destroyed after this thread's thread_local
// objects (a static tensor holding a graph, at exit), and a pointer has no destructor to outlive.
thread_local std::vector<NodeEdges>* t_releasing = nullptr;

}  // namespace

// Destroying the last reference to a graph's output used to recurse once per node (node -> input
// tensor -> its grad_fn node -> ...), and a long enough chain overflowed the stack. Now a node
// destroyed while another one is being released only hands its edges to that one's work list,
// and the outermost destructor releases the list in a loop, so the depth stays one node whatever
// the graph.
Node::~Node() {
  NodeEdges mine;
  mine.inputs.swap(inputs);
  mine.backward.swap(backward);
  mine.accumulate.swap(accumulate);
  if (t_releasing) {
    try {
      t_releasing->push_back(std::move(mine));
    } catch (...) {  // no memory for the list: `mine` is released here, recursively
    }
    return;
  }
  std::vector<NodeEdges> pending;
  t_releasing = &pending;
  mine = NodeEdges();  // ours first: the nodes they were the last owner of queue their edges
  while (!pending.empty()) {
    NodeEdges next = std::move(pending.back());
    pending.pop_back();
  }  // `next` is released here: the nodes it was the last owner of append their edges
  t_releasing = nullptr;
}

void record(Tensor& out, const char* name, std::vector<Tensor> inputs, BackwardFn fn) {
  if (!any_requires_grad(inputs)) return;
  auto node = std::make_shared<Node>();
  node->name = name;
  node->inputs = std::move(inputs);
  node->backward = std::move(fn);
  node->flop_category = flops::current_category();
  out.impl().grad_fn = std::move(node);
  out.impl().requires_grad = true;
}

namespace {

// Nodes reachable from `root`, ordered so every node comes before the nodes it feeds into
// (i.e. outputs before inputs). Iterative depth-first post-order, then reversed.
std::vector<Node*> topological_order(Node* root) {
  std::vector<Node*> post;
  std::unordered_set<Node*> seen{root};
  std::vector<std::pair<Node*, size_t>> stack{{root, 0}};
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (next < node->inputs.size()) {
      const Tensor& in = node->inputs[next++];
      if (!in.defined() || !in.requires_grad() || !in.grad_fn()) continue;
      Node* child = in.grad_fn().get();
      if (seen.insert(child).second) stack.emplace_back(child, 0);
    } else {
      post.push_back(node);
      stack.pop_back();
    }
  }
  return {post.rbegin(), post.rend()};
}

void accumulate_leaf(const Tensor& leaf, const Tensor& g) {
  Tensor old = leaf.grad();
  leaf.set_grad(old.defined() ? add(old, g) : g.contiguous());
}

}  // namespace

void run_backward(const Tensor& root, const Tensor& grad_in) {
  MONET_CHECK(root.requires_grad(), "backward: tensor of shape {} does not require grad",
              shape_str(root.shape()));
  Tensor grad = grad_in;
  if (!grad.defined()) {
    MONET_CHECK(root.numel() == 1,
                "backward: an implicit gradient needs a one-element tensor, got shape {}",
                shape_str(root.shape()));
    grad = ones(root.shape(), root.dtype(), root.device());
  }
  MONET_CHECK(grad.shape() == root.shape(), "backward: gradient shape {} != tensor shape {}",
              shape_str(grad.shape()), shape_str(root.shape()));
  NoGradGuard no_grad;  // the backward pass itself is not recorded
  if (root.is_leaf()) {
    accumulate_leaf(root, grad);
    return;
  }
  // The gradient waiting for each node. `owned`: the engine made this tensor (a sum or a buffer
  // of Node::accumulate), so nothing else aliases it and it may be added into in place.
  struct Pending {
    Tensor g;
    bool owned = false;
  };
  std::unordered_map<Node*, Pending> pending;
  Node* top = root.grad_fn().get();
  pending[top] = {grad, false};
  for (Node* node : topological_order(top)) {
    auto it = pending.find(node);
    if (it == pending.end()) continue;
    Tensor g = std::move(it->second.g);
    pending.erase(it);
    std::optional<FlopScope> scope;
    if (!node->flop_category.empty()) scope.emplace(node->flop_category);
    if (node->accumulate && node->needs(0) && !node->inputs[0].is_leaf()) {
      Pending& slot = pending[node->inputs[0].grad_fn().get()];
      if (slot.g.defined() && !slot.owned) {  // a gradient a closure returned: copy it first
        Tensor own = empty(slot.g.shape(), slot.g.dtype(), slot.g.device());
        copy_(own, slot.g);
        slot.g = own;
      }
      node->accumulate(slot.g, g);
      slot.owned = true;
      continue;
    }
    std::vector<Tensor> grads = node->backward(g);
    MONET_CHECK(grads.size() == node->inputs.size(),
                "backward of {}: returned {} gradients for {} inputs", node->name, grads.size(),
                node->inputs.size());
    for (size_t i = 0; i < grads.size(); ++i) {
      const Tensor& in = node->inputs[i];
      const Tensor& gi = grads[i];
      if (!gi.defined() || !node->needs(i)) continue;
      MONET_CHECK(gi.shape() == in.shape(),
                  "backward of {}: gradient {} has shape {}, its input has shape {}", node->name, i,
                  shape_str(gi.shape()), shape_str(in.shape()));
      if (in.is_leaf()) {
        accumulate_leaf(in, gi);
      } else {
        Node* child = in.grad_fn().get();
        auto [slot, fresh] = pending.try_emplace(child, Pending{gi, false});
        if (fresh) continue;
        if (slot->second.owned) {
          add_(slot->second.g, gi);
        } else {
          slot->second = {add(slot->second.g, gi), true};
        }
      }
    }
  }
}

}  // namespace monet
