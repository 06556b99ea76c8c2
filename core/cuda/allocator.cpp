// The caching allocator (see allocator.h for the policy).
#include "core/cuda/allocator.h"

#include <algorithm>

#include "core/cuda/context.h"
#include "core/cuda/device.h"
#include "core/error.h"

namespace monet::cuda {

size_t round_size(size_t nbytes) {
  constexpr size_t kMinBlock = 512, kSmall = size_t{1} << 20;
  if (nbytes <= kSmall)
    return (std::max<size_t>(nbytes, 1) + kMinBlock - 1) / kMinBlock * kMinBlock;
  size_t pow2 = kSmall;  // largest power of two strictly below nbytes
  while (pow2 * 2 < nbytes) pow2 *= 2;
  const size_t step = pow2 / 4;  // four bins between pow2 and 2·pow2
  return (nbytes + step - 1) / step * step;
}

void* CachingAllocator::allocate(size_t nbytes) {
  const size_t size = round_size(nbytes);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = free_.find(size);
  if (it != free_.end() && !it->second.empty()) {
    void* p = it->second.back();
    it->second.pop_back();
    stats_.cached -= static_cast<int64_t>(size);
    ++stats_.reuses;
    return p;
  }
  void* p = nullptr;
  cudaError_t s = cudaMalloc(&p, size);
  if (s == cudaErrorMemoryAllocation) {  // give the cache back to the driver and try once more
    cudaGetLastError();
    empty_locked();
    s = cudaMalloc(&p, size);
  }
  if (s != cudaSuccess) {
    const auto st = stats_;
    check(s,
          fmt::format("cudaMalloc({} bytes, for a request of {}; {} bytes reserved, {} cached)",
                      size, nbytes, st.reserved, st.cached)
              .c_str(),
          __FILE__, __LINE__);
  }
  stats_.reserved += static_cast<int64_t>(size);
  ++stats_.device_mallocs;
  return p;
}

void CachingAllocator::release(void* p, size_t nbytes) noexcept {
  const size_t size = round_size(nbytes);
  std::lock_guard<std::mutex> lock(mu_);
  try {
    free_[size].push_back(p);
    stats_.cached += static_cast<int64_t>(size);
  } catch (...) {  // no memory for the free list: give the block straight back
    cudaFree(p);
    stats_.reserved -= static_cast<int64_t>(size);
  }
}

void CachingAllocator::empty_locked() {
  for (auto& [size, blocks] : free_) {
    for (void* p : blocks) {
      cudaFree(p);  // synchronises the device: no queued kernel can still use the block
      stats_.reserved -= static_cast<int64_t>(size);
      stats_.cached -= static_cast<int64_t>(size);
    }
    blocks.clear();
  }
}

void CachingAllocator::empty() {
  std::lock_guard<std::mutex> lock(mu_);
  empty_locked();
}

CacheStats CachingAllocator::stats() {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

// ---- the entry points memory.cpp calls ----

void* device_alloc(size_t nbytes) {
  Context& ctx = Context::get();
  MONET_CHECK(Context::alive(), "device_alloc: the CUDA context is already shut down (at exit)");
  ctx.stream();  // selects the device, or throws "no CUDA device available: <reason>"
  return ctx.allocator().allocate(nbytes);
}

void device_free(void* p, size_t nbytes) noexcept {
  if (!p || !Context::alive()) return;  // at exit, after the context: the driver reclaims it
  Context::get().allocator().release(p, nbytes);
}

CacheStats cache_stats() {
  return Context::get().allocator().stats();
}
void empty_cache() {
  Context::get().allocator().empty();
}

}  // namespace monet::cuda
