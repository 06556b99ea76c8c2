// Random controls matched to a selection (docs/math/interpretability.md §6.5): a set of experts
// drawn at random, of the same size as the selected set and with the same routing mass, so that
// "removing the selected experts hurts domain d more than removing random ones" compares like with
// like. A uniform draw of the same count is not a control: the selected experts may carry much
// more (or much less) of the routing than a typical expert, and removing heavy experts hurts
// every domain.
//
// The mass of a set is the sum of its experts' mass (a routing probability or a mean score,
// measured on the selection split only). The draw starts from a uniform subset of the same size
// and then swaps one member for one non-member, both chosen at random, whenever the swap brings
// the set's mass closer to the target, until it lies within `tolerance` of it (relative). Every
// set within the tolerance can be reached, and the draws of different seeds differ.
#pragma once
#include <cstdint>
#include <vector>

#include "core/random.h"

namespace monet::interp {

struct MatchedDraw {
  std::vector<int64_t> experts;  // increasing
  double mass = 0;               // the set's mass
  double ratio = 1;              // mass / the selection's mass (1 when both are 0)
  bool matched = false;          // |ratio − 1| <= tolerance
};

// mass[e]: expert e's mass; selected: the selection (distinct experts of [0, mass.size())). An
// empty selection gives an empty draw.
MatchedDraw matched_random_experts(const std::vector<double>& mass,
                                   const std::vector<int64_t>& selected, Generator& gen,
                                   double tolerance = 0.05, int max_swaps = 20000);

}  // namespace monet::interp
