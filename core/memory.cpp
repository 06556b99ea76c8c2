#include "core/memory.h"

#include <atomic>
#include <cstdlib>
#include <new>

#include "core/error.h"

#ifdef MONET_WITH_CUDA
#include "core/cuda/allocator.h"
#include "core/cuda/device.h"
#endif

namespace monet {
namespace {

struct Counters {
  std::atomic<int64_t> current{0}, peak{0}, largest{0}, count{0};
};

// One set of counters per device type: the only process-wide state of this file, and it only
// observes (it never changes what an allocation returns).
Counters& counters(DeviceType t) {
  static Counters c[3];
  return c[static_cast<int>(t)];
}

void note_alloc(DeviceType t, int64_t n) {
  Counters& c = counters(t);
  int64_t now = c.current.fetch_add(n) + n;
  int64_t p = c.peak.load();
  while (now > p && !c.peak.compare_exchange_weak(p, now)) {
  }
  int64_t l = c.largest.load();
  while (n > l && !c.largest.compare_exchange_weak(l, n)) {
  }
  c.count.fetch_add(1);
}

// Host memory: blocks 64-byte aligned (AVX-512 rows; every bin is a multiple of 512 bytes), cached
// like the device's (core/block_cache.h) so a training step makes no system calls in the steady
// state. Up to 2 GiB of free blocks are kept.
void* host_alloc(size_t nbytes) {
  return std::aligned_alloc(64, nbytes);
}
void host_free(void* p) {
  std::free(p);
}

// The cache must outlive every tensor: a static or global tensor (a test's case table, say) is
// released after main returns, and its block must find the cache whole, not a destroyed free-list
// map. So the cache is created with `new` on first use and deliberately never deleted; the
// reference is its only owner.
BlockCache& host_cache() {
  static BlockCache& cache = *new BlockCache(host_alloc, host_free, int64_t{2} << 30);
  // At exit the cached blocks go back to the system and caching stops, so that no block stays
  // cached when the process ends (nothing for LeakSanitizer or valgrind to report). Statics are
  // destroyed in reverse order of construction: a tensor released before this (one made after
  // the cache's first use) lands in the free lists emptied here; one released after it finds a
  // limit of 0 and is freed at once.
  static struct EmptyAtExit {
    ~EmptyAtExit() { cache.set_max_cached(0); }
  } empty_at_exit;
  return cache;
}

}  // namespace

BlockCacheStats memory::host_cache_stats() {
  return host_cache().stats();
}
void memory::empty_host_cache() {
  host_cache().empty();
}

void* memory::allocate(Device d, size_t nbytes) {
  void* p = nullptr;
  if (nbytes == 0 || d.is_meta()) {
  } else if (d.is_cuda()) {
#ifdef MONET_WITH_CUDA
    MONET_CHECK(d.index == 0, "allocate: the CUDA backend drives cuda:0 only, not {}", d.str());
    p = cuda::device_alloc(nbytes);
#else
    throw Error("this build has no CUDA backend (configure with nvcc and -DMONET_CUDA=ON)");
#endif
  } else {
    p = host_cache().allocate(nbytes);
    if (!p) throw Error(fmt::format("out of host memory allocating {} bytes", nbytes));
  }
  note_alloc(d.type, static_cast<int64_t>(nbytes));  // counted once it succeeded
  return p;
}

void memory::release(Device d, void* p, size_t nbytes) {
  counters(d.type).current.fetch_sub(static_cast<int64_t>(nbytes));
  if (!p) return;
  if (d.is_cuda()) {
#ifdef MONET_WITH_CUDA
    cuda::device_free(p, nbytes);
#endif
    return;
  }
  host_cache().release(p, nbytes);
}

MemoryStats memory::stats(DeviceType t) {
  Counters& c = counters(t);
  return {c.current.load(), c.peak.load(), c.largest.load(), c.count.load()};
}

void memory::reset_peak(DeviceType t) {
  Counters& c = counters(t);
  c.peak.store(c.current.load());
  c.largest.store(0);
}

void synchronize(Device d) {
#ifdef MONET_WITH_CUDA
  if (d.is_cuda()) cuda::synchronize();
#else
  (void)d;
#endif
}

}  // namespace monet
