// Every op and layer that has a fused CPU kernel also has a composed reference
// (core/kernel_path.h). for_each_kernel_path runs a test body once each way, so a test written once
// checks both:
//   TEST(ReferenceMonetVd, ModuleF64) { for_each_kernel_path([] { run_layer_module(true, F64); });
//   }
#pragma once
#include <gtest/gtest.h>

#include "core/kernel_path.h"

namespace monet::testing {

template <class Body>
void for_each_kernel_path(Body&& body) {
  {
    SCOPED_TRACE("kernel path: fused CPU kernels");
    body();
  }
  {
    SCOPED_TRACE("kernel path: composed (ComposedOnly)");
    ComposedOnly composed;
    body();
  }
}

}  // namespace monet::testing
