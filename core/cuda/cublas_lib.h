// cuBLAS, opened with dlopen when the first CUDA product needs it. Linked the usual way, cuBLAS
// (and the 540 MB cuBLASLt it pulls in) is mapped into every process at start-up, GPU or not:
// ~0.5 s for `monet --version` and for every test process. Opened here, a CPU-only run never
// touches it; the CUDA runtime is linked statically and opens the driver only on its first call.
//
// The table holds the few cuBLAS functions the backend calls (core/ops/matmul.cpp, device.cpp).
// Plain C++ (no fmt): device.h, which nvcc compiles, includes it.
#pragma once
#include <cublas_v2.h>

namespace monet::cuda {

struct CublasLib {
  decltype(&cublasCreate_v2) create = nullptr;
  decltype(&cublasSetStream_v2) set_stream = nullptr;
  decltype(&cublasSgemmStridedBatched) sgemm_strided_batched = nullptr;
  decltype(&cublasGetStatusName) status_name = nullptr;
  decltype(&cublasGetStatusString) status_string = nullptr;
};

// The library, opened once: libcublas.so.<major> from the toolkit the build used, else from the
// loader's search path. Throws monet::Error naming the file and dlerror()'s reason when neither
// opens or a function is missing.
const CublasLib& cublas_lib();

}  // namespace monet::cuda
