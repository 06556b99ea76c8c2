// The CUDA device: one process-wide context that owns the stream every kernel and copy runs on,
// the cuBLAS handle bound to it, and the caching allocator (core/cuda/allocator.h).
//
// Everything here is created lazily on first use, so a build with the CUDA backend runs unchanged
// on a machine without a GPU: `available()` probes the driver once and never throws, and only an
// attempt to put a tensor on the device reports the reason.
//
// Error checks: MONET_CUDA_CHECK(call) turns any cudaError_t / cublasStatus_t that is not success
// into a monet::Error naming the call as written, its error name and the source line, e.g.
//   "CUDA error: cudaMalloc(&p, 1048576) failed with cudaErrorMemoryAllocation (out of memory)
//    at core/cuda/allocator.cpp:57"
// MONET_CUDA_CHECK_LAUNCH("kernel") does the same for the launch just made (cudaGetLastError).
//
// This header is plain C++ (no fmt, no Tensor) so that nvcc can include it in the .cu files.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>

namespace monet::cuda {

// True when the runtime sees at least one device. Probed once; never throws.
bool available() noexcept;
// Why `available()` is false ("cudaGetDeviceCount: cudaErrorInsufficientDriver (CUDA driver
// version is insufficient for CUDA runtime version)" or "no CUDA device found"); empty when true.
std::string unavailable_reason();
int device_count() noexcept;  // 0 when unavailable
std::string device_name();    // "NVIDIA H100 80GB HBM3"; empty when unavailable
size_t total_memory();        // bytes of device memory; 0 when unavailable

// The stream every kernel, cuBLAS call and copy of the backend is ordered on. A non-blocking
// stream: it does not synchronise with the legacy default stream.
cudaStream_t stream();
cublasHandle_t cublas();  // bound to stream(); default math mode (full FP32, no TF32)
void synchronize();       // wait for everything issued on stream()

// Throwing ends of the check macros (defined in device.cpp, where fmt builds the message).
[[noreturn]] void fail(const char* what, const char* call, const char* file, int line);
void check(cudaError_t status, const char* call, const char* file, int line);
void check(cublasStatus_t status, const char* call, const char* file, int line);

// Launch geometry for grid-stride loops: enough blocks to cover n (at least 1), capped so the
// grid stays within limits; the loops are correct for any grid size.
inline unsigned grid_for(long long n, int threads) {
  long long b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > 65535) b = 65535;
  return static_cast<unsigned>(b);
}

}  // namespace monet::cuda

#define MONET_CUDA_CHECK(CALL) ::monet::cuda::check((CALL), #CALL, __FILE__, __LINE__)
#define MONET_CUDA_CHECK_LAUNCH(KERNEL) \
  ::monet::cuda::check(cudaGetLastError(), KERNEL "<<<...>>>", __FILE__, __LINE__)
