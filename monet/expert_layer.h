// One interface for the feed-forward layers that route tokens to experts — SMoE, PEER, MONET-HD
// and MONET-VD — so the interpretability commands (eval/experts.h) read and remove experts the
// same way for every kind, without knowing the layer (docs/math/interpretability.md).
//
// The three calls:
//   num_experts()    N, the experts the layer routes to (flat indices 0 .. N−1);
//   expert_scores()  each token's score for each expert it used in the last forward pass;
//   remove_experts() exact removal: the removed experts' weighted terms are dropped from the
//                    layer's output and nothing else changes (no re-routing, no renormalisation).
#pragma once
#include <cstdint>
#include <vector>

namespace monet::moe {

// Sparse scores of the tokens of one forward pass, row-major over [B, T]: token t's experts are
// expert[begin[t] .. begin[t+1]) with their scores, every score > 0, experts increasing.
struct TokenScores {
  std::vector<int64_t> begin;  // tokens + 1
  std::vector<int32_t> expert;
  std::vector<float> score;
  int64_t tokens() const { return static_cast<int64_t>(begin.size()) - 1; }
};

// Builds TokenScores one token at a time: (expert, score) contributions of a token are summed in
// a dense scratch row, remembering which entries were touched, so that emitting and clearing cost
// O(touched), never O(N).
class TokenScoresBuilder {
 public:
  explicit TokenScoresBuilder(int64_t experts);
  void add(int32_t expert, float score);
  void end_token();  // the token's experts, increasing, with their summed scores > 0
  TokenScores take() { return std::move(out_); }

 private:
  std::vector<float> acc_;
  std::vector<uint8_t> seen_;
  std::vector<int32_t> touched_;
  TokenScores out_;
};

class ExpertLayer {
 public:
  virtual ~ExpertLayer() = default;
  virtual int64_t num_experts() const = 0;
  // Scores of the last forward pass (an error before the first one).
  virtual TokenScores expert_scores() const = 0;
  // Flat indices in [0, N), replacing any earlier removal; {} restores the whole layer.
  virtual void remove_experts(const std::vector<int64_t>& experts) = 0;

  // √N when expert e is the pair (e / √N, e % √N) of a product (MONET, PEER); 0 for a flat list.
  virtual int64_t expert_grid() const { return 0; }
  // Layers that share one routing decision (MONET's routing group of G layers) return the same
  // key and the same scores; every other layer its own.
  virtual const void* routing_key() const { return this; }
};

}  // namespace monet::moe
