#include "monet/expert_layer.h"

#include <algorithm>

namespace monet::moe {

TokenScoresBuilder::TokenScoresBuilder(int64_t experts)
    : acc_(static_cast<size_t>(experts), 0.0f), seen_(static_cast<size_t>(experts), 0) {
  out_.begin.push_back(0);
}

void TokenScoresBuilder::add(int32_t expert, float score) {
  if (!seen_[expert]) seen_[expert] = 1, touched_.push_back(expert);
  acc_[expert] += score;
}

void TokenScoresBuilder::end_token() {
  std::sort(touched_.begin(), touched_.end());
  for (int32_t e : touched_) {
    if (acc_[e] > 0) out_.expert.push_back(e), out_.score.push_back(acc_[e]);
    acc_[e] = 0, seen_[e] = 0;
  }
  touched_.clear();
  out_.begin.push_back(static_cast<int64_t>(out_.expert.size()));
}

}  // namespace monet::moe
