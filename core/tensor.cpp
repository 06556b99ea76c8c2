#include "core/tensor.h"

#include <cstring>

#include "core/autograd.h"
#include "core/memory.h"
#include "core/ops.h"
#include "core/settings.h"

namespace monet {

std::string dtype_name(DType t) {
  switch (t) {
    case DType::F32:
      return "F32";
    case DType::F64:
      return "F64";
    case DType::I32:
      return "I32";
    case DType::BF16:
      return "BF16";
  }
  return "?";
}

std::string Device::str() const {
  switch (type) {
    case DeviceType::CPU:
      return device_types().name(type);
    case DeviceType::CUDA:
      return fmt::format("{}:{}", device_types().name(type), index);
    case DeviceType::Meta:
      return "meta";
  }
  return "?";
}

std::string shape_str(const Shape& s) {
  return fmt::format("[{}]", fmt::join(s, ", "));
}

// Sizes are multiplied with an overflow check everywhere: a product that wraps would size a
// buffer smaller than the tensor (a config with model.d = 2^62 once did, in the RoPE table).
int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s)
    MONET_CHECK(!__builtin_mul_overflow(n, d, &n), "shape {} has more than 2^63 elements",
                shape_str(s));
  return n;
}

Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    MONET_CHECK(!__builtin_mul_overflow(acc, s[i], &acc), "shape {} has more than 2^63 elements",
                shape_str(s));
  }
  return st;
}

Storage::Storage(Device device, size_t nbytes)
    : data_(memory::allocate(device, nbytes)), nbytes_(nbytes), device_(device) {}
Storage::~Storage() {
  memory::release(device_, data_, nbytes_);
}

TensorImpl& Tensor::impl() const {
  MONET_CHECK(impl_ != nullptr, "use of an undefined tensor");
  return *impl_;
}

int64_t Tensor::size(int64_t axis) const {
  int64_t n = dim();
  MONET_CHECK(axis >= -n && axis < n, "size: axis {} out of range for shape {}", axis,
              shape_str(shape()));
  return shape()[axis < 0 ? axis + n : axis];
}

bool Tensor::is_contiguous() const {
  int64_t acc = 1;
  for (size_t i = shape().size(); i-- > 0;) {
    if (shape()[i] != 1 && strides()[i] != acc) return false;
    acc *= shape()[i];
  }
  return true;
}

void* Tensor::raw_data() const {
  auto* base = static_cast<char*>(storage()->data());
  return base ? base + offset() * static_cast<int64_t>(dtype_size(dtype())) : nullptr;
}

template <class T>
T* Tensor::data() const {
  MONET_CHECK(dtype() == dtype_of<T>(), "data<{}>() on a {} tensor", dtype_name(dtype_of<T>()),
              dtype_name(dtype()));
  return static_cast<T*>(raw_data());
}
template float* Tensor::data<float>() const;
template double* Tensor::data<double>() const;
template int32_t* Tensor::data<int32_t>() const;

template <class T>
std::vector<T> Tensor::to_vector() const {
  Tensor c = to(Device::cpu()).to(dtype_of<T>()).contiguous();
  const T* p = c.data<T>();
  return std::vector<T>(p, p + c.numel());
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int32_t> Tensor::to_vector<int32_t>() const;

double Tensor::item() const {
  MONET_CHECK(numel() == 1, "item: tensor of shape {} has {} elements, not 1", shape_str(shape()),
              numel());
  return to_vector<double>()[0];
}

Tensor& Tensor::requires_grad_(bool on) {
  MONET_CHECK(is_leaf(), "requires_grad_: only leaf tensors can be marked");
  MONET_CHECK(!on || is_floating(dtype()), "requires_grad_: {} tensors have no gradient",
              dtype_name(dtype()));
  impl().requires_grad = on;
  return *this;
}

void Tensor::backward(const Tensor& grad) const {
  run_backward(*this, grad);
}

Tensor Tensor::detach() const {
  auto p = std::make_shared<TensorImpl>();
  p->storage = impl().storage;
  p->shape = impl().shape;
  p->strides = impl().strides;
  p->offset = impl().offset;
  p->dtype = impl().dtype;
  return Tensor(std::move(p));
}

Tensor Tensor::reshape(const Shape& s) const {
  return monet::reshape(*this, s);
}
Tensor Tensor::permute(const Shape& o) const {
  return monet::permute(*this, o);
}
Tensor Tensor::transpose(int64_t a, int64_t b) const {
  return monet::transpose(*this, a, b);
}
Tensor Tensor::slice(int64_t axis, int64_t start, int64_t end) const {
  return monet::slice(*this, axis, start, end);
}
Tensor Tensor::expand(const Shape& s) const {
  return monet::expand(*this, s);
}
Tensor Tensor::unsqueeze(int64_t axis) const {
  return monet::unsqueeze(*this, axis);
}
Tensor Tensor::squeeze(int64_t axis) const {
  return monet::squeeze(*this, axis);
}
Tensor Tensor::contiguous() const {
  return monet::contiguous(*this);
}
Tensor Tensor::to(Device d) const {
  return monet::to_device(*this, d);
}
Tensor Tensor::to(DType t) const {
  return monet::cast(*this, t);
}

// ---- factories ----

Tensor empty(const Shape& s, DType t, Device d) {
  for (int64_t n : s) MONET_CHECK(n >= 0, "empty: negative size in shape {}", shape_str(s));
  const int64_t n = shape_numel(s);
  MONET_CHECK(n <= INT64_MAX / static_cast<int64_t>(dtype_size(t)),
              "empty: shape {} of {} needs more than 2^63 bytes", shape_str(s), dtype_name(t));
  auto p = std::make_shared<TensorImpl>();
  p->storage = std::make_shared<Storage>(d, static_cast<size_t>(n) * dtype_size(t));
  p->shape = s;
  p->strides = contiguous_strides(s);
  p->dtype = t;
  return Tensor(std::move(p));
}

Tensor full(const Shape& s, double value, DType t, Device d) {
  Tensor out = empty(s, t, d);
  fill_(out, value);
  return out;
}
Tensor zeros(const Shape& s, DType t, Device d) {
  return full(s, 0.0, t, d);
}
Tensor ones(const Shape& s, DType t, Device d) {
  return full(s, 1.0, t, d);
}
Tensor scalar(double v, DType t, Device d) {
  return full({}, v, t, d);
}
Tensor zeros_like(const Tensor& like) {
  return zeros(like.shape(), like.dtype(), like.device());
}
Tensor empty_like(const Tensor& like) {
  return empty(like.shape(), like.dtype(), like.device());
}

Tensor arange(int64_t n, DType t, Device d) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<double>(i);
  return from_vector(v, {n}, d).to(t);
}

template <class T>
Tensor from_vector(const std::vector<T>& v, const Shape& s, Device d) {
  MONET_CHECK(static_cast<int64_t>(v.size()) == shape_numel(s),
              "from_vector: {} values do not fill shape {}", v.size(), shape_str(s));
  Tensor out = empty(s, dtype_of<T>(), Device::cpu());
  if (!v.empty()) std::memcpy(out.raw_data(), v.data(), v.size() * sizeof(T));
  return d.is_cpu() ? out : out.to(d);
}
template Tensor from_vector(const std::vector<float>&, const Shape&, Device);
template Tensor from_vector(const std::vector<double>&, const Shape&, Device);
template Tensor from_vector(const std::vector<int32_t>&, const Shape&, Device);

}  // namespace monet
