// Fused or composed: the one place that decides which form of an op or layer runs.
//
// Several ops and layers exist twice: a composed reference, written with other core ops (so it
// runs on every backend and its backward comes from theirs), and a fused CPU kernel that computes
// the same function in fewer passes with a hand-written backward. They are:
//   masked_softmax, causal_attention (core/ops), the MONET router's keep mask (monet/router.cpp),
//   MONET-VD's mixing (monet/monet_vd.cpp), PEER's expert sum (monet/peer.cpp), and the AdamW / SGD
//   updates and clip_grad_norm (nn/optim.cpp).
// Each asks use_fused_kernel(device): true on the CPU, false on CUDA and meta (no fused kernel
// there) and inside a ComposedOnly scope. The tests run each of them both ways (tests/kernel_paths.h) and
// compare; a user never needs the scope.
//
// Like grad mode (core/autograd.h), the choice is per thread and scoped.
#pragma once
#include "core/tensor.h"

namespace monet {

bool use_fused_kernel(const Device& device);

// In its scope every op and layer above takes its composed form, on every device.
class ComposedOnly {
 public:
  ComposedOnly();
  ~ComposedOnly();
  ComposedOnly(const ComposedOnly&) = delete;
  ComposedOnly& operator=(const ComposedOnly&) = delete;

 private:
  bool prev_;
};

}  // namespace monet
