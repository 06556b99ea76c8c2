// MONET's auxiliary losses (Park et al. 2024, Eq. 16–18), added to the LM loss as
//   L = L_LM + λ (L_unif + L_amb),  λ = 1e-3.
//
// Uniformity: L_unif = −1/(2H√N) Σ_h Σ_i log ḡ1_hi − 1/(2H√N) Σ_h Σ_j log ḡ2_hj,
//   ḡ the routing probability averaged over the batch's tokens. Its minimum, log √N, is reached
//   when every sub-expert gets the same share. A sub-expert that no token kept has ḡ = 0 exactly;
//   ḡ is clamped at 1e-9 inside the log so the loss stays finite (its gradient is then zero there).
// Ambiguity: L_amb = mean over tokens of 1/(2H) Σ_h (1 − max_i ĝ1_hi) + 1/(2H) Σ_h (1 − max_j
// ĝ2_hj),
//   which pushes each (token, head) towards one confident sub-expert.
#pragma once
#include "monet/router.h"

namespace monet::moe {

Tensor uniformity_loss(const Routing& r);
Tensor ambiguity_loss(const Routing& r);

}  // namespace monet::moe
