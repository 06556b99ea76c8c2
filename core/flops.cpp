#include "core/flops.h"

namespace monet {
namespace {
thread_local FlopCounter* g_active = nullptr;  // per thread, like grad mode
}

FlopCounter::FlopCounter() : prev_(g_active) { g_active = this; }
FlopCounter::~FlopCounter() { g_active = prev_; }

int64_t FlopCounter::total() const {
  int64_t t = 0;
  for (const auto& [k, v] : counts_) t += v;
  return t;
}
void FlopCounter::add(int64_t n) { counts_[category] += n; }

FlopScope::FlopScope(const std::string& category) {
  if (g_active) {
    prev_ = g_active->category;
    g_active->category = category;
  }
}
FlopScope::~FlopScope() {
  if (g_active) g_active->category = prev_;
}

void flops::count(int64_t n) {
  if (g_active) g_active->add(n);
}

std::string flops::current_category() { return g_active ? g_active->category : std::string(); }

}  // namespace monet
