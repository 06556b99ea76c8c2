// Device memory: a caching allocator in the manner of PyTorch's. cudaMalloc and cudaFree are slow
// and synchronise the device, so a freed block is not returned to the driver but kept in a free
// list of its size bin and handed to the next request of that bin (core/block_cache.h: the bins,
// whole-block reuse, and one retry after emptying the cache when cudaMalloc runs out of memory; a
// second failure throws an Error naming cudaMalloc and the size).
//
// Reuse needs no synchronisation because every kernel and copy runs on the one stream of the device
// context (core/cuda/device.h): work that reads a freed block was queued before any work that
// writes its next owner.
//
// memory::allocate (core/memory.cpp) counts the bytes a tensor asked for (current / peak / largest
// for DeviceType::CUDA) and calls device_alloc; the bytes the cache holds beyond that are reported
// by cache_stats().
#pragma once
#include <cstddef>
#include <cstdint>

namespace monet::cuda {

void* device_alloc(size_t nbytes);                  // throws monet::Error
void device_free(void* p, size_t nbytes) noexcept;  // nbytes: the size asked of device_alloc

struct CacheStats {
  int64_t reserved = 0;        // bytes obtained from cudaMalloc and not yet given back
  int64_t cached = 0;          // of those, bytes sitting in the free lists
  int64_t device_mallocs = 0;  // cudaMalloc calls since start
  int64_t reuses = 0;          // requests served from a free list since start
};
CacheStats cache_stats();
// Give every cached (free) block back to the driver; blocks held by tensors are untouched.
void empty_cache();
// The bin (block size in bytes) a request of `nbytes` is served from.
size_t round_size(size_t nbytes);

// The raw ends the cache calls: cudaMalloc (nullptr when out of memory; other errors throw) and
// cudaFree, which synchronises the device, so no queued kernel can still use the block.
void* raw_device_alloc(size_t nbytes);
void raw_device_free(void* p);

}  // namespace monet::cuda
