#include "core/block_cache.h"

#include <algorithm>

namespace monet {

BlockCache::BlockCache(RawAlloc alloc, RawFree free, int64_t max_cached)
    : alloc_(alloc), free_fn_(free), max_cached_(max_cached) {}

size_t BlockCache::round_size(size_t nbytes) {
  constexpr size_t kMinBlock = 512, kSmall = size_t{1} << 20;
  if (nbytes <= kSmall)
    return (std::max<size_t>(nbytes, 1) + kMinBlock - 1) / kMinBlock * kMinBlock;
  size_t pow2 = kSmall;  // largest power of two strictly below nbytes
  while (pow2 * 2 < nbytes) pow2 *= 2;
  const size_t step = pow2 / 4;  // four bins between pow2 and 2·pow2
  return (nbytes + step - 1) / step * step;
}

void* BlockCache::allocate(size_t nbytes) {
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
  void* p = alloc_(size);
  if (!p) {  // give the cache back and try once more
    empty_locked();
    p = alloc_(size);
  }
  if (!p) return nullptr;
  stats_.reserved += static_cast<int64_t>(size);
  ++stats_.raw_allocs;
  return p;
}

void BlockCache::release(void* p, size_t nbytes) noexcept {
  const size_t size = round_size(nbytes);
  std::lock_guard<std::mutex> lock(mu_);
  if (stats_.cached + static_cast<int64_t>(size) <= max_cached_) {
    try {
      free_[size].push_back(p);
      stats_.cached += static_cast<int64_t>(size);
      return;
    } catch (...) {  // no memory for the free list: give the block straight back
    }
  }
  free_fn_(p);
  stats_.reserved -= static_cast<int64_t>(size);
}

void BlockCache::empty_locked() {
  for (auto& [size, blocks] : free_) {
    for (void* p : blocks) {
      free_fn_(p);
      stats_.reserved -= static_cast<int64_t>(size);
      stats_.cached -= static_cast<int64_t>(size);
    }
    blocks.clear();
  }
}

void BlockCache::empty() {
  std::lock_guard<std::mutex> lock(mu_);
  empty_locked();
}

void BlockCache::set_max_cached(int64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  max_cached_ = bytes;
  if (stats_.cached > max_cached_) empty_locked();
}

BlockCacheStats BlockCache::stats() {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace monet
