// Device memory: a caching allocator in the manner of PyTorch's. cudaMalloc and cudaFree are slow
// and synchronise the device, so a freed block is not returned to the driver but kept in a free
// list of its size bin and handed to the next request of that bin.
//
//  - Requests are rounded up to a bin: multiples of 512 bytes up to 1 MiB, above that one of four
//    steps per power of two (1 MiB, 1.25, 1.5, 1.75, 2, 2.5, ...), so a bin wastes at most 25%.
//  - Blocks are reused only whole, from the exact bin (no splitting): simple and obviously right.
//  - Reuse needs no synchronisation because every kernel and copy runs on the one stream of the
//    device context (core/cuda/device.h): work that reads a freed block was queued before any work
//    that writes its next owner.
//  - When cudaMalloc runs out of memory the cache is emptied and the call retried once; a second
//    failure throws an Error naming cudaMalloc and the size.
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

}  // namespace monet::cuda
