// Elementwise ops. Binary ops broadcast numpy-style and reduce their gradients back to each input's
// shape with sum_to; unary ops map a dense copy of their input. Each op's derivative is written
// with other ops (so it runs on any backend), using a few non-differentiable helper maps
// (step, gelu', silu') where the closed form is not a product of existing ops. The scalar math is
// the functors of functors.h, shared with the CUDA kernels of elementwise.cu.
#include <cmath>

#include "core/cpu/loops.h"
#include "core/cpu/parallel.h"
#include "core/flops.h"
#include "core/ops/common.h"
#include "core/ops/functors.h"
#ifdef MONET_WITH_CUDA
#include "core/cuda/iteration.h"
#endif

namespace monet {
using namespace detail;

namespace {

// out[i] = f(a[i], b[i]) over the broadcast shape; out has a's dtype (a and b must agree).
template <class F>
Tensor binary_map(const char* op, const Tensor& a, const Tensor& b, F f) {
  check_same_device(op, a, b);
  MONET_CHECK(a.dtype() == b.dtype(), "{}: dtypes differ ({} and {}) for shapes {} and {}", op,
              dtype_name(a.dtype()), dtype_name(b.dtype()), shape_str(a.shape()),
              shape_str(b.shape()));
  Shape shape = broadcast_shapes(a.shape(), b.shape(), op);
#ifdef MONET_WITH_CUDA
  if (a.device().is_cuda()) {
    cuda::check_dtype(op, a, /*allow_int=*/true);
    Tensor out = empty(shape, a.dtype(), a.device());
    flops::count(out.numel());
    const auto it = cuda::make_iter<3>(
        op, shape, {out.strides(), broadcast_strides(a, shape), broadcast_strides(b, shape)},
        {0, a.offset(), b.offset()});
    if (a.dtype() == DType::F32)
      cuda::binary(f, out.data<float>(), static_cast<const float*>(a.storage()->data()),
                   static_cast<const float*>(b.storage()->data()), it);
    else
      cuda::binary(f, out.data<int32_t>(), static_cast<const int32_t*>(a.storage()->data()),
                   static_cast<const int32_t*>(b.storage()->data()), it);
    return out;
  }
#endif
  check_cpu(op, a);
  Tensor out = empty(shape, a.dtype(), a.device());
  flops::count(out.numel());
  MONET_SWITCH_ALL(a.dtype(), op, [&] {
    using T = scalar_t;
    T* o = out.data<T>();
    const T* pa = static_cast<const T*>(a.storage()->data());
    const T* pb = static_cast<const T*>(b.storage()->data());
    if (a.shape() == shape && b.shape() == shape && a.is_contiguous() && b.is_contiguous()) {
      pa += a.offset();
      pb += b.offset();
      cpu::parallel_for(out.numel(), cpu::kElementGrain, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) o[i] = static_cast<T>(f(pa[i], pb[i]));
      });
      return;
    }
    cpu::parallel_strided_loop<3>(
        shape, {out.strides(), broadcast_strides(a, shape), broadcast_strides(b, shape)},
        {0, a.offset(), b.offset()}, cpu::kElementGrain,
        [&](const std::array<int64_t, 3>& p) { o[p[0]] = static_cast<T>(f(pa[p[1]], pb[p[2]])); });
  });
  return out;
}

// out[i] = f(a[i]) for a floating tensor; `cost` FLOPs per element.
template <class F>
Tensor unary_map(const char* op, const Tensor& a, F f, int64_t cost = 1) {
#ifdef MONET_WITH_CUDA
  if (a.device().is_cuda()) {
    cuda::check_dtype(op, a);
    Tensor x = a.is_contiguous() ? a : a.detach().contiguous();
    Tensor out = empty(a.shape(), a.dtype(), a.device());
    flops::count(cost * out.numel());
    cuda::unary(f, out.data<float>(), x.data<float>(), out.numel());
    return out;
  }
#endif
  check_cpu(op, a);
  Tensor x = a.is_contiguous() ? a : a.detach().contiguous();
  Tensor out = empty(a.shape(), a.dtype(), a.device());
  flops::count(cost * out.numel());
  MONET_SWITCH_FLOAT(a.dtype(), op, [&] {
    const scalar_t* px = x.data<scalar_t>();
    scalar_t* o = out.data<scalar_t>();
    cpu::parallel_for(out.numel(), cpu::kElementGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) o[i] = f(px[i]);
    });
  });
  return out;
}

// Non-differentiable derivative maps used by the backward formulas below.
Tensor step(const Tensor& x) {
  return unary_map("step", x, fn::Step{});
}
Tensor gelu_grad(const Tensor& x) {
  return unary_map("gelu_grad", x, fn::GeluGrad{}, 8);
}
Tensor silu_grad(const Tensor& x) {
  return unary_map("silu_grad", x, fn::SiluGrad{}, 5);
}

// cond ? a : b over the broadcast `shape`, without autograd.
Tensor where_kernel(const Tensor& cond, const Tensor& a, const Tensor& b, const Shape& shape) {
  const char* op = "where";
  Tensor out = empty(shape, a.dtype(), a.device());
#ifdef MONET_WITH_CUDA
  if (a.device().is_cuda()) {
    cuda::check_dtype(op, a, /*allow_int=*/true);
    cuda::check_dtype(op, cond, /*allow_int=*/true);
    cuda::where(a.dtype(), out.raw_data(), cond.dtype(), cond.storage()->data(),
                a.storage()->data(), b.storage()->data(),
                cuda::make_iter<4>(op, shape,
                                   {out.strides(), broadcast_strides(cond, shape),
                                    broadcast_strides(a, shape), broadcast_strides(b, shape)},
                                   {0, cond.offset(), a.offset(), b.offset()}));
    return out;
  }
#endif
  check_cpu(op, a);
  MONET_SWITCH_ALL(a.dtype(), op, [&] {
    using T = scalar_t;
    T* o = out.data<T>();
    const T* pa = static_cast<const T*>(a.storage()->data());
    const T* pb = static_cast<const T*>(b.storage()->data());
    MONET_SWITCH_ALL(cond.dtype(), op, [&] {
      const auto* pc = static_cast<const scalar_t*>(cond.storage()->data());
      cpu::strided_loop<4>(
          shape,
          {out.strides(), broadcast_strides(cond, shape), broadcast_strides(a, shape),
           broadcast_strides(b, shape)},
          {0, cond.offset(), a.offset(), b.offset()},
          [&](const std::array<int64_t, 4>& p) { o[p[0]] = pc[p[1]] != 0 ? pa[p[2]] : pb[p[3]]; });
    });
  });
  return out;
}

}  // namespace

// ---- binary, broadcasting ----

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = binary_map("add", a, b, fn::Add{});
  record(out, "add", {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor& g) {
    return std::vector<Tensor>{sum_to(g, sa), sum_to(g, sb)};
  });
  return out;
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = binary_map("sub", a, b, fn::Sub{});
  record(out, "sub", {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor& g) {
    return std::vector<Tensor>{sum_to(g, sa), sum_to(neg(g), sb)};
  });
  return out;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary_map("mul", a, b, fn::Mul{});
  record(out, "mul", {a, b}, [a = a.detach(), b = b.detach()](const Tensor& g) {
    return std::vector<Tensor>{sum_to(mul(g, b), a.shape()), sum_to(mul(g, a), b.shape())};
  });
  return out;
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary_map("div", a, b, fn::Div{});
  // d(a/b)/da = 1/b, d(a/b)/db = −a/b² = −out/b
  record(out, "div", {a, b}, [sa = a.shape(), b = b.detach(), y = out.detach()](const Tensor& g) {
    Tensor gb = div(g, b);
    return std::vector<Tensor>{sum_to(gb, sa), sum_to(neg(mul(gb, y)), b.shape())};
  });
  return out;
}

Tensor greater(const Tensor& a, const Tensor& b) {
  return binary_map("greater", a, b, fn::Greater{});
}
Tensor greater_equal(const Tensor& a, const Tensor& b) {
  return binary_map("greater_equal", a, b, fn::GreaterEqual{});
}
Tensor equal(const Tensor& a, const Tensor& b) {
  return binary_map("equal", a, b, fn::Equal{});
}

// ---- scalar ----

Tensor add(const Tensor& a, double s) {
  Tensor out = unary_map("add_scalar", a, fn::AddScalar{s});
  record(out, "add_scalar", {a}, [](const Tensor& g) { return std::vector<Tensor>{g}; });
  return out;
}

Tensor mul(const Tensor& a, double s) {
  Tensor out = unary_map("mul_scalar", a, fn::MulScalar{s});
  record(out, "mul_scalar", {a}, [s](const Tensor& g) { return std::vector<Tensor>{mul(g, s)}; });
  return out;
}

// ---- unary ----

Tensor neg(const Tensor& a) {
  Tensor out = unary_map("neg", a, fn::Neg{});
  record(out, "neg", {a}, [](const Tensor& g) { return std::vector<Tensor>{neg(g)}; });
  return out;
}

Tensor exp(const Tensor& a) {
  Tensor out = unary_map("exp", a, fn::Exp{});
  record(out, "exp", {a}, [y = out.detach()](const Tensor& g) {  // (eˣ)' = eˣ
    return std::vector<Tensor>{mul(g, y)};
  });
  return out;
}

Tensor log(const Tensor& a) {
  Tensor out = unary_map("log", a, fn::Log{});
  record(out, "log", {a}, [x = a.detach()](const Tensor& g) {  // (ln x)' = 1/x
    return std::vector<Tensor>{div(g, x)};
  });
  return out;
}

Tensor sqrt(const Tensor& a) {
  Tensor out = unary_map("sqrt", a, fn::Sqrt{});
  record(out, "sqrt", {a}, [y = out.detach()](const Tensor& g) {  // (√x)' = 1/(2√x)
    return std::vector<Tensor>{div(mul(g, 0.5), y)};
  });
  return out;
}

Tensor rsqrt(const Tensor& a) {
  Tensor out = unary_map("rsqrt", a, fn::Rsqrt{});
  record(out, "rsqrt", {a}, [y = out.detach()](const Tensor& g) {  // (x^-½)' = −½·y³
    return std::vector<Tensor>{mul(g, mul(pow(y, 3.0), -0.5))};
  });
  return out;
}

Tensor pow(const Tensor& a, double p) {
  Tensor out = unary_map("pow", a, fn::Pow{p});
  record(out, "pow", {a}, [x = a.detach(), p](const Tensor& g) {  // (xᵖ)' = p·xᵖ⁻¹
    return std::vector<Tensor>{mul(g, mul(pow(x, p - 1.0), p))};
  });
  return out;
}

Tensor relu(const Tensor& a) {
  Tensor out = unary_map("relu", a, fn::Relu{});
  record(out, "relu", {a},
         [x = a.detach()](const Tensor& g) { return std::vector<Tensor>{mul(g, step(x))}; });
  return out;
}

Tensor relu2(const Tensor& a) {
  Tensor out = unary_map("relu2", a, fn::Relu2{});
  record(out, "relu2", {a}, [x = a.detach()](const Tensor& g) {  // (max(x,0)²)' = 2·max(x,0)
    return std::vector<Tensor>{mul(g, mul(relu(x), 2.0))};
  });
  return out;
}

Tensor gelu(const Tensor& a) {
  Tensor out = unary_map("gelu", a, fn::Gelu{}, 8);
  record(out, "gelu", {a},
         [x = a.detach()](const Tensor& g) { return std::vector<Tensor>{mul(g, gelu_grad(x))}; });
  return out;
}

Tensor silu(const Tensor& a) {
  Tensor out = unary_map("silu", a, fn::Silu{}, 4);
  record(out, "silu", {a},
         [x = a.detach()](const Tensor& g) { return std::vector<Tensor>{mul(g, silu_grad(x))}; });
  return out;
}

Tensor sigmoid(const Tensor& a) {
  Tensor out = unary_map("sigmoid", a, fn::Sigmoid{}, 4);
  record(out, "sigmoid", {a}, [y = out.detach()](const Tensor& g) {  // σ' = σ(1 − σ)
    return std::vector<Tensor>{mul(g, mul(y, add(neg(y), 1.0)))};
  });
  return out;
}

Tensor softplus(const Tensor& a) {
  Tensor out = unary_map("softplus", a, fn::Softplus{}, 4);
  record(out, "softplus", {a},
         [x = a.detach()](const Tensor& g) { return std::vector<Tensor>{mul(g, sigmoid(x))}; });
  return out;
}

// ---- selection ----

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  const char* op = "where";
  check_same_device(op, cond, a);
  check_same_device(op, a, b);
  MONET_CHECK(a.dtype() == b.dtype(), "where: dtypes differ ({} and {})", dtype_name(a.dtype()),
              dtype_name(b.dtype()));
  Shape shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), op), b.shape(), op);
  Tensor out = where_kernel(cond, a, b, shape);
  record(out, "where", {cond, a, b},
         [c = cond.detach(), sa = a.shape(), sb = b.shape()](const Tensor& g) {
           Tensor zero = zeros({}, g.dtype(), g.device());
           return std::vector<Tensor>{Tensor(), sum_to(where(c, g, zero), sa),
                                      sum_to(where(c, zero, g), sb)};
         });
  return out;
}

Tensor masked_fill(const Tensor& a, const Tensor& mask, double value) {
  return where(mask, full({}, value, a.dtype(), a.device()), a);
}

}  // namespace monet
