#include "core/kernel_path.h"

namespace monet {
namespace {
thread_local bool g_composed_only = false;
}  // namespace

bool use_fused_kernel(const Device& device) {
  return device.is_cpu() && !g_composed_only;
}

ComposedOnly::ComposedOnly() : prev_(g_composed_only) {
  g_composed_only = true;
}
ComposedOnly::~ComposedOnly() {
  g_composed_only = prev_;
}

}  // namespace monet
