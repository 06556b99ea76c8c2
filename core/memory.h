// Device memory: a tracking allocator (current and peak bytes, per device type) under every Storage,
// over a caching allocator on the host and on CUDA.
//
// The complexity table reads these counters to report the peak memory of a step; tests read
// `largest_allocation` to prove that a layer never materialises a B·T·N-sized intermediate.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/block_cache.h"
#include "core/dtype.h"

namespace monet {

struct MemoryStats {
  int64_t current = 0;             // bytes live now
  int64_t peak = 0;                // high-water mark since the last reset_peak
  int64_t largest_allocation = 0;  // largest single request since the last reset_peak
  int64_t allocations = 0;         // number of requests since start
};

namespace memory {
// Raw allocation on a device, counted. CPU memory is 64-byte aligned (AVX-512 rows).
void* allocate(Device d, size_t nbytes);
void release(Device d, void* p, size_t nbytes);
MemoryStats stats(DeviceType t);
// Peak and largest are reset to the current figures (start of a measured region).
void reset_peak(DeviceType t);
// Host memory is cached like the device's (core/block_cache.h): freed blocks are kept for reuse.
// The counters above count what tensors hold; these report the cache besides.
BlockCacheStats host_cache_stats();
void empty_host_cache();
}  // namespace memory

// Waits until the device has finished all the work issued so far (a no-op on the CPU): timings of
// asynchronous devices are taken between two of these.
void synchronize(Device d);

}  // namespace monet
