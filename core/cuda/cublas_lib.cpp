#include "core/cuda/cublas_lib.h"

#include <dlfcn.h>

#include <string>
#include <vector>

#include "core/error.h"

namespace monet::cuda {
namespace {

template <class F>
void bind(void* lib, const char* name, const std::string& file, F& fn) {
  void* sym = dlsym(lib, name);
  const char* why = sym == nullptr ? dlerror() : nullptr;  // dlerror() clears itself: read once
  MONET_CHECK(sym != nullptr, "cuBLAS: '{}' has no function {} ({})", file, name,
              why ? why : "not found");
  fn = reinterpret_cast<F>(sym);
}

CublasLib open_cublas() {
  const std::string soname = "libcublas.so." + std::to_string(CUBLAS_VER_MAJOR);
  std::vector<std::string> tries;
#ifdef MONET_CUDA_LIBDIR
  tries.push_back(std::string(MONET_CUDA_LIBDIR) + "/" + soname);
#endif
  tries.push_back(soname);
  void* lib = nullptr;
  std::string why;
  for (const std::string& file : tries) {
    lib = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);  // kept open for the process's life
    if (lib != nullptr) {
      CublasLib l;
      bind(lib, "cublasCreate_v2", file, l.create);
      bind(lib, "cublasSetStream_v2", file, l.set_stream);
      bind(lib, "cublasSgemmStridedBatched", file, l.sgemm_strided_batched);
      bind(lib, "cublasGetStatusName", file, l.status_name);
      bind(lib, "cublasGetStatusString", file, l.status_string);
      return l;
    }
    const char* e = dlerror();
    why += fmt::format("{}{}", why.empty() ? "" : "; ", e ? e : file);
  }
  throw Error(
      fmt::format("cuBLAS could not be opened ({}): install the CUDA toolkit's cuBLAS "
                  "or put its folder on LD_LIBRARY_PATH",
                  why));
}

}  // namespace

const CublasLib& cublas_lib() {
  static const CublasLib lib = open_cublas();
  return lib;
}

}  // namespace monet::cuda
