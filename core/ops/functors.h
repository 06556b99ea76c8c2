// The scalar math of the elementwise ops, written once for both backends: the CPU loops of
// elementwise.cpp and the CUDA kernels of elementwise.cu apply these same functors, so the two
// backends cannot drift apart in a formula. MONET_HD marks them __host__ __device__ under nvcc and
// is empty for the host compiler; this header must stay plain C++ (no fmt, no Tensor).
#pragma once
#include <cmath>

#ifdef __CUDACC__
#define MONET_HD __host__ __device__
#else
#define MONET_HD
#endif

namespace monet::fn {

// ---- binary; comparisons give 0/1 in the operands' type ----
struct Add {
  template <class T>
  MONET_HD T operator()(T x, T y) const {
    return x + y;
  }
};
struct Sub {
  template <class T>
  MONET_HD T operator()(T x, T y) const {
    return x - y;
  }
};
struct Mul {
  template <class T>
  MONET_HD T operator()(T x, T y) const {
    return x * y;
  }
};
struct Div {
  template <class T>
  MONET_HD T operator()(T x, T y) const {
    return x / y;
  }
};
struct Greater {
  template <class T>
  MONET_HD T operator()(T x, T y) const {
    return x > y ? T(1) : T(0);
  }
};
struct GreaterEqual {
  template <class T>
  MONET_HD T operator()(T x, T y) const {
    return x >= y ? T(1) : T(0);
  }
};
struct Equal {
  template <class T>
  MONET_HD T operator()(T x, T y) const {
    return x == y ? T(1) : T(0);
  }
};

// ---- unary, floating ----
template <class T>
MONET_HD T sigmoid_of(T x) {  // two branches, so neither exp can overflow
  return x >= 0 ? T(1) / (T(1) + std::exp(-x)) : std::exp(x) / (T(1) + std::exp(x));
}

// GELU, tanh form: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
constexpr double kGeluC = 0.7978845608028654;  // √(2/π)

struct AddScalar {
  double s;
  template <class T>
  MONET_HD T operator()(T x) const {
    return x + T(s);
  }
};
struct MulScalar {
  double s;
  template <class T>
  MONET_HD T operator()(T x) const {
    return x * T(s);
  }
};
struct Neg {
  template <class T>
  MONET_HD T operator()(T x) const {
    return -x;
  }
};
struct Exp {
  template <class T>
  MONET_HD T operator()(T x) const {
    return std::exp(x);
  }
};
struct Log {
  template <class T>
  MONET_HD T operator()(T x) const {
    return std::log(x);
  }
};
struct Sqrt {
  template <class T>
  MONET_HD T operator()(T x) const {
    return std::sqrt(x);
  }
};
struct Rsqrt {
  template <class T>
  MONET_HD T operator()(T x) const {
    return T(1) / std::sqrt(x);
  }
};
struct Pow {
  double p;
  template <class T>
  MONET_HD T operator()(T x) const {
    return std::pow(x, T(p));
  }
};
struct Relu {
  template <class T>
  MONET_HD T operator()(T x) const {
    return x > 0 ? x : T(0);
  }
};
struct Relu2 {  // max(x, 0)², MONET's activation
  template <class T>
  MONET_HD T operator()(T x) const {
    return x > 0 ? x * x : T(0);
  }
};
struct Step {  // the derivative of relu
  template <class T>
  MONET_HD T operator()(T x) const {
    return x > 0 ? T(1) : T(0);
  }
};
struct Gelu {
  template <class T>
  MONET_HD T operator()(T x) const {
    return T(0.5) * x * (T(1) + std::tanh(T(kGeluC) * (x + T(0.044715) * x * x * x)));
  }
};
struct GeluGrad {
  template <class T>
  MONET_HD T operator()(T x) const {
    T t = std::tanh(T(kGeluC) * (x + T(0.044715) * x * x * x));
    return T(0.5) * (T(1) + t) +
           T(0.5) * x * (T(1) - t * t) * T(kGeluC) * (T(1) + T(3 * 0.044715) * x * x);
  }
};
struct Sigmoid {
  template <class T>
  MONET_HD T operator()(T x) const {
    return sigmoid_of(x);
  }
};
struct Silu {
  template <class T>
  MONET_HD T operator()(T x) const {
    return x * sigmoid_of(x);
  }
};
struct SiluGrad {  // d/dx x·σ(x) = σ(x)·(1 + x·(1 − σ(x)))
  template <class T>
  MONET_HD T operator()(T x) const {
    T s = sigmoid_of(x);
    return s * (T(1) + x * (T(1) - s));
  }
};
struct Softplus {  // log(1 + eˣ) = max(x, 0) + log1p(e^−|x|): no overflow for large |x|
  template <class T>
  MONET_HD T operator()(T x) const {
    return (x > 0 ? x : T(0)) + std::log1p(std::exp(-std::abs(x)));
  }
};

}  // namespace monet::fn
