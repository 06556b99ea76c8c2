// The caching allocator (see allocator.h for the policy).
#include "core/cuda/allocator.h"

#include "core/cuda/context.h"
#include "core/cuda/device.h"
#include "core/error.h"

namespace monet::cuda {

size_t round_size(size_t nbytes) {
  return BlockCache::round_size(nbytes);
}

void* raw_device_alloc(size_t nbytes) {
  void* p = nullptr;
  const cudaError_t s = cudaMalloc(&p, nbytes);
  if (s == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // clear the sticky error: the cache is emptied and the call retried
    return nullptr;
  }
  check(s, fmt::format("cudaMalloc(&p, {})", nbytes).c_str(), __FILE__, __LINE__);
  return p;
}

void raw_device_free(void* p) {
  cudaFree(p);
}

// ---- the entry points memory.cpp calls ----

void* device_alloc(size_t nbytes) {
  Context& ctx = Context::get();
  MONET_CHECK(Context::alive(), "device_alloc: the CUDA context is already shut down (at exit)");
  ctx.stream();  // selects the device, or throws "no CUDA device available: <reason>"
  void* p = ctx.allocator().allocate(nbytes);
  if (!p) {
    const BlockCacheStats st = ctx.allocator().stats();
    check(cudaErrorMemoryAllocation,
          fmt::format("cudaMalloc({} bytes, for a request of {}; {} bytes reserved, {} cached)",
                      round_size(nbytes), nbytes, st.reserved, st.cached)
              .c_str(),
          __FILE__, __LINE__);
  }
  return p;
}

void device_free(void* p, size_t nbytes) noexcept {
  if (!p || !Context::alive()) return;  // at exit, after the context: the driver reclaims it
  Context::get().allocator().release(p, nbytes);
}

CacheStats cache_stats() {
  const BlockCacheStats s = Context::get().allocator().stats();
  return {s.reserved, s.cached, s.raw_allocs, s.reuses};
}
void empty_cache() {
  Context::get().allocator().empty();
}

}  // namespace monet::cuda
