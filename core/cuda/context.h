// The device context behind core/cuda/device.h and core/cuda/allocator.h: the one object that
// owns the backend's process-wide state (probe result, stream, cuBLAS handle, cached blocks).
// Internal to core/cuda/*.cpp.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/block_cache.h"
#include "core/cuda/allocator.h"

namespace monet::cuda {

class Context {
 public:
  // The process's context, created on first use. Its destructor (at exit) releases no CUDA
  // resource: the driver reclaims the stream, the handle and the memory with the process, and the
  // CUDA runtime may already be torn down by then.
  static Context& get();
  // False once static destruction has destroyed the context: device_free then does nothing.
  static bool alive() noexcept;

  bool available() noexcept;
  const std::string& reason() noexcept;
  int count() noexcept;
  cudaStream_t stream();
  cublasHandle_t cublas();
  BlockCache& allocator() { return allocator_; }

  Context();
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

 private:
  void probe() noexcept;
  void require_device(const char* what);
  std::once_flag probed_;
  bool available_ = false;
  int count_ = 0;
  std::string reason_;
  std::mutex mu_;  // guards the lazy creation below
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  BlockCache allocator_{raw_device_alloc, raw_device_free, INT64_MAX};  // keeps every free block
};

}  // namespace monet::cuda
