// A size-binned cache of memory blocks, in the manner of PyTorch's caching allocators, shared by
// the host allocator (core/memory.cpp) and the CUDA one (core/cuda/allocator.cpp).
//
//  - Requests are rounded up to a bin: multiples of 512 bytes up to 1 MiB, above that one of four
//    steps per power of two (1 MiB, 1.25, 1.5, 1.75, 2, 2.5, ...), so a bin wastes at most 25%.
//  - A freed block goes to the free list of its bin and is handed whole to the next request of that
//    bin (no splitting: simple and obviously right). A training step allocates the same sizes
//    every step, so after the first step it asks the system for nothing.
//  - When the raw allocator fails, the cache is emptied and the request retried once.
//  - At most `max_cached` bytes sit in the free lists; a block freed beyond that goes straight
//    back.
// The bytes tensors hold are counted by memory::stats; this cache reports what it keeps besides.
#pragma once
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace monet {

struct BlockCacheStats {
  int64_t reserved = 0;    // bytes obtained from the raw allocator and not yet given back
  int64_t cached = 0;      // of those, bytes sitting in the free lists
  int64_t raw_allocs = 0;  // calls to the raw allocator since start
  int64_t reuses = 0;      // requests served from a free list since start
};

class BlockCache {
 public:
  using RawAlloc = void* (*)(size_t nbytes);  // nullptr when out of memory
  using RawFree = void (*)(void* p);
  BlockCache(RawAlloc alloc, RawFree free, int64_t max_cached);
  BlockCache(const BlockCache&) = delete;
  BlockCache& operator=(const BlockCache&) = delete;

  // A block of at least nbytes (round_size(nbytes)); nullptr when the raw allocator fails even
  // after the cache was emptied (the caller raises the error that names its device).
  void* allocate(size_t nbytes);
  void release(void* p, size_t nbytes) noexcept;  // nbytes: the size asked of allocate
  void empty();                                   // give every free block back
  // Changes the most bytes the free lists keep. When the blocks cached exceed the new limit they
  // are all given back; with 0, every later release goes straight back too (the host cache at
  // exit, core/memory.cpp).
  void set_max_cached(int64_t bytes);
  BlockCacheStats stats();

  // The bin (block size in bytes) a request of `nbytes` is served from.
  static size_t round_size(size_t nbytes);

 private:
  void empty_locked();
  RawAlloc alloc_;
  RawFree free_fn_;
  int64_t max_cached_;
  std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;  // bin size -> free blocks of that size
  BlockCacheStats stats_;
};

}  // namespace monet
