// The device context: probe, stream, cuBLAS handle, and the error checks' throwing end.
#include "core/cuda/device.h"

#include <atomic>
#include <cstring>

#include "core/cuda/context.h"
#include "core/cuda/cublas_lib.h"
#include "core/cuda/kernels.h"
#include "core/error.h"

namespace monet::cuda {
namespace {

// 0 = not yet built, 1 = alive, 2 = destroyed. Constant-initialised and trivially destructible,
// so it can be read at any point of static destruction.
std::atomic<int> g_state{0};

// "/work/main/core/cuda/allocator.cpp" -> "core/cuda/allocator.cpp": messages name repo paths.
const char* repo_path(const char* file) {
  const char* best = file;
  for (const char* p = std::strstr(file, "core/"); p; p = std::strstr(p + 1, "core/")) best = p;
  return best;
}

}  // namespace

// ---- error checks ----

void fail(const char* what, const char* call, const char* file, int line) {
  throw Error(
      fmt::format("CUDA error: {} failed with {} at {}:{}", call, what, repo_path(file), line));
}

void check(cudaError_t status, const char* call, const char* file, int line) {
  if (status == cudaSuccess) return;
  cudaGetLastError();  // clear the error so the next check does not report it again
  fail(fmt::format("{} ({})", cudaGetErrorName(status), cudaGetErrorString(status)).c_str(), call,
       file, line);
}

void check(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  const CublasLib& lib = cublas_lib();  // a status means cuBLAS is open
  fail(fmt::format("{} ({})", lib.status_name(status), lib.status_string(status)).c_str(), call,
       file, line);
}

// ---- the context ----

Context::Context() {
  g_state.store(1);
}
Context::~Context() {
  g_state.store(2);
}

Context& Context::get() {
  static Context ctx;
  return ctx;
}

bool Context::alive() noexcept {
  return g_state.load() == 1;
}

void Context::probe() noexcept {
  std::call_once(probed_, [this] {
    try {
      int n = 0;
      cudaError_t s = cudaGetDeviceCount(&n);
      if (s != cudaSuccess) {
        cudaGetLastError();
        reason_ = fmt::format("cudaGetDeviceCount failed with {} ({})", cudaGetErrorName(s),
                              cudaGetErrorString(s));
        n = 0;
      } else if (n == 0) {
        reason_ = "cudaGetDeviceCount found no CUDA device";
      }
      count_ = n;
      available_ = n > 0;
    } catch (...) {  // fmt's allocation: report "unavailable" rather than throw
      count_ = 0;
      available_ = false;
    }
  });
}

bool Context::available() noexcept {
  probe();
  return available_;
}
const std::string& Context::reason() noexcept {
  probe();
  return reason_;
}
int Context::count() noexcept {
  probe();
  return count_;
}

void Context::require_device(const char* what) {
  if (!available()) throw Error(fmt::format("{}: no CUDA device available: {}", what, reason()));
}

cudaStream_t Context::stream() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!stream_) {
    require_device("cuda::stream");
    MONET_CUDA_CHECK(cudaSetDevice(0));  // the backend drives device 0 (Device::cuda(0))
    cudaStream_t s = nullptr;
    MONET_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    stream_ = s;
  }
  return stream_;
}

cublasHandle_t Context::cublas() {
  cudaStream_t s = stream();
  std::lock_guard<std::mutex> lock(mu_);
  if (!cublas_) {
    cublasHandle_t h = nullptr;
    MONET_CUDA_CHECK(cublas_lib().create(&h));
    MONET_CUDA_CHECK(cublas_lib().set_stream(h, s));
    cublas_ = h;
  }
  return cublas_;
}

// ---- the free functions of device.h ----

bool available() noexcept {
  return Context::get().available();
}
std::string unavailable_reason() {
  return Context::get().reason();
}
int device_count() noexcept {
  return Context::get().count();
}

std::string device_name() {
  if (!available()) return "";
  cudaDeviceProp prop{};
  MONET_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  return prop.name;
}

size_t total_memory() {
  if (!available()) return 0;
  cudaDeviceProp prop{};
  MONET_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  return prop.totalGlobalMem;
}

cudaStream_t stream() {
  return Context::get().stream();
}
cublasHandle_t cublas() {
  return Context::get().cublas();
}
void synchronize() {
  MONET_CUDA_CHECK(cudaStreamSynchronize(stream()));
}

// ---- host <-> device copies (kernels.h) ----
// Ordered after every queued kernel on the stream, and waited for: the host buffer may be
// pageable and is read or written by the caller right after.

void copy_host_to_device(void* dst, const void* src, size_t nbytes) {
  if (nbytes == 0) return;
  cudaStream_t s = stream();
  MONET_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyHostToDevice, s));
  MONET_CUDA_CHECK(cudaStreamSynchronize(s));
}

void copy_device_to_host(void* dst, const void* src, size_t nbytes) {
  if (nbytes == 0) return;
  cudaStream_t s = stream();
  MONET_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToHost, s));
  MONET_CUDA_CHECK(cudaStreamSynchronize(s));
}

}  // namespace monet::cuda
