// Tensor: a strided view (shape, strides, offset) of a reference-counted Storage on one device,
// plus what reverse-mode autodiff needs (requires_grad, grad, grad_fn).
//
// Views (reshape of contiguous data, permute/transpose, slice, expand) share the storage; an op that
// needs dense rows calls contiguous(), which copies only when the layout is not already dense.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"

namespace monet {

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);  // "[2, 3]"
int64_t shape_numel(const Shape& s);
Shape contiguous_strides(const Shape& s);

// A buffer of bytes on one device. Owned through shared_ptr by every tensor that views it.
class Storage {
 public:
  Storage(Device device, size_t nbytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
};

struct Node;  // core/autograd.h

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape, strides;  // strides in elements
  int64_t offset = 0;    // in elements
  DType dtype = DType::F32;
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;  // accumulated by backward() on leaves
  std::shared_ptr<Node> grad_fn;     // the op that produced this tensor (null for leaves)
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  const Shape& strides() const { return impl().strides; }
  int64_t offset() const { return impl().offset; }
  int64_t dim() const { return static_cast<int64_t>(impl().shape.size()); }
  int64_t size(int64_t axis) const;  // negative axes count from the end
  int64_t numel() const { return shape_numel(impl().shape); }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device(); }
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const { return impl().storage; }
  TensorImpl& impl() const;
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& o) const { return impl_ == o.impl_; }

  // Typed pointer to the first element (offset applied). Checks the dtype and the device.
  template <class T>
  T* data() const;
  void* raw_data() const;  // offset applied, any dtype, any device

  // Host access, for tests and I/O: copies to the CPU when needed.
  double item() const;  // one-element tensors only
  template <class T>
  std::vector<T> to_vector() const;

  // --- autograd ---
  bool requires_grad() const { return impl().requires_grad; }
  Tensor& requires_grad_(bool on = true);  // leaves only
  Tensor grad() const { return Tensor(impl().grad); }
  void set_grad(const Tensor& g) const { impl().grad = g.impl_; }
  const std::shared_ptr<Node>& grad_fn() const { return impl().grad_fn; }
  bool is_leaf() const { return impl().grad_fn == nullptr; }
  // Reverse-mode sweep from this tensor; `grad` defaults to 1 for a one-element tensor.
  void backward(const Tensor& grad = Tensor()) const;
  // Same data, cut from the graph.
  Tensor detach() const;

  // --- views and conversions (sugar for the ops in core/ops.h) ---
  Tensor reshape(const Shape& s) const;
  Tensor permute(const Shape& order) const;
  Tensor transpose(int64_t a, int64_t b) const;
  Tensor slice(int64_t axis, int64_t start, int64_t end) const;
  Tensor expand(const Shape& s) const;
  Tensor unsqueeze(int64_t axis) const;
  Tensor squeeze(int64_t axis) const;
  Tensor contiguous() const;
  Tensor to(Device d) const;
  Tensor to(DType t) const;

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// --- factories (no grad; call requires_grad_() on the result to make a leaf parameter) ---
Tensor empty(const Shape& s, DType t = DType::F32, Device d = Device::cpu());
Tensor zeros(const Shape& s, DType t = DType::F32, Device d = Device::cpu());
Tensor ones(const Shape& s, DType t = DType::F32, Device d = Device::cpu());
Tensor full(const Shape& s, double value, DType t = DType::F32, Device d = Device::cpu());
Tensor arange(int64_t n, DType t = DType::I32, Device d = Device::cpu());
template <class T>
Tensor from_vector(const std::vector<T>& v, const Shape& s, Device d = Device::cpu());
Tensor scalar(double v, DType t = DType::F32, Device d = Device::cpu());
// Same shape, dtype and device as `like`.
Tensor zeros_like(const Tensor& like);
Tensor empty_like(const Tensor& like);

}  // namespace monet
