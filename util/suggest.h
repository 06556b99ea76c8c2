// "Did you mean …?" for a mistyped name: the closest of the known names by edit distance, when it
// is close enough to be a typo (at most a third of the name's letters changed, and at least one).
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace monet {

// Edit distance (optimal string alignment): inserting, deleting or substituting one character, or
// swapping two adjacent ones, costs 1.
size_t edit_distance(std::string_view a, std::string_view b);

// The known name nearest to `name`, or "" when none is within the typo bound.
std::string nearest_name(std::string_view name, const std::vector<std::string>& known);

// " (did you mean 'x'?)" or "", to append to an error message.
std::string did_you_mean(std::string_view name, const std::vector<std::string>& known);

}  // namespace monet
