// Element types and devices: the two tags every Tensor carries.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace monet {

// float32 is the working type. float64 exists so gradient checks can run the very same kernels in
// double precision; int32 holds indices (token ids, top-k indices, targets). bfloat16 is a storage
// type only (weights kept small in checkpoints): copies and casts convert to and from it (rounding
// to nearest even), and no op computes in it — `.to(DType::F32)` first. The products of bf16
// mixed precision (core/gemm_mode.h) round their f32 inputs inside the GEMM, not through tensors.
enum class DType : uint8_t { F32, F64, I32, BF16 };

inline size_t dtype_size(DType t) {
  return t == DType::F64 ? 8 : t == DType::BF16 ? 2 : 4;
}
inline bool is_floating(DType t) { return t == DType::F32 || t == DType::F64; }
std::string dtype_name(DType t);  // "F32", "F64", "I32", "BF16": the safetensors spelling

// float ↔ bfloat16 bits: round to nearest even (NaN stays a quiet NaN, the largest floats round
// to infinity); the way back is exact.
inline uint16_t to_bf16(float x) {
  uint32_t u = 0;
  __builtin_memcpy(&u, &x, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
inline float from_bf16(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float x = 0;
  __builtin_memcpy(&x, &u, 4);
  return x;
}

template <class T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() { return DType::F32; }
template <>
constexpr DType dtype_of<double>() { return DType::F64; }
template <>
constexpr DType dtype_of<int32_t>() { return DType::I32; }

enum class DeviceType : uint8_t { CPU, CUDA, Meta };

// Meta tensors have a shape but no memory: used to count the parameters of paper-sized models.
struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;
  static Device cpu() { return {DeviceType::CPU, 0}; }
  static Device cuda(int i = 0) { return {DeviceType::CUDA, i}; }
  static Device meta() { return {DeviceType::Meta, 0}; }
  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  bool is_meta() const { return type == DeviceType::Meta; }
  bool operator==(const Device&) const = default;
  std::string str() const;
};

}  // namespace monet

// One case of the dtype switches below: BODY (a lambda) run with `scalar_t` bound to TYPE.
#define MONET_DTYPE_CASE(ENUM, TYPE, ...) \
  case ::monet::DType::ENUM: {            \
    using scalar_t = TYPE;                \
    return __VA_ARGS__();                 \
  }

// The dtype switch: runs BODY with `scalar_t` bound to the C++ type of a floating dtype.
#define MONET_SWITCH_FLOAT(DT, OPNAME, ...)                                                  \
  [&] {                                                                                      \
    switch (DT) {                                                                            \
      MONET_DTYPE_CASE(F32, float, __VA_ARGS__)                                              \
      MONET_DTYPE_CASE(F64, double, __VA_ARGS__)                                             \
      default:                                                                               \
        throw ::monet::Error(::fmt::format("{}: expected a floating tensor, got {}", OPNAME, \
                                           ::monet::dtype_name(DT)));                        \
    }                                                                                        \
  }()

// Same, for every dtype (copies, gathers): integer tensors too.
#define MONET_SWITCH_ALL(DT, OPNAME, ...)                                                          \
  [&] {                                                                                            \
    switch (DT) {                                                                                  \
      MONET_DTYPE_CASE(F32, float, __VA_ARGS__)                                                    \
      MONET_DTYPE_CASE(F64, double, __VA_ARGS__)                                                   \
      MONET_DTYPE_CASE(I32, int32_t, __VA_ARGS__)                                                  \
      case ::monet::DType::BF16:                                                                   \
        break;                                                                                     \
    }                                                                                              \
    throw ::monet::Error(::fmt::format(                                                            \
        "{}: BF16 is a storage type, no op computes in it: convert with .to(F32) first", OPNAME)); \
  }()
