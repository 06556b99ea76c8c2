// Text generation with a KV cache: the prompt is run once, then each new token is one position
// through every layer, attending over the cached keys and values.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/random.h"
#include "nn/transformer.h"

namespace monet {

struct SampleOptions {
  int64_t tokens = 200;       // new tokens to generate
  double temperature = 0.8;   // 0: greedy
  int64_t top_k = 0;          // 0: the whole vocabulary
  uint64_t seed = 0;
  std::function<bool(int32_t id)> stop;  // when set, generation ends after an id it accepts
};

// The prompt's ids followed by `opt.tokens` generated ids (fewer when `opt.stop` ends it). Past the
// context the window slides: when the KV cache holds `context` positions, the last context/2 tokens
// are read again into a fresh cache and decoding goes on (one prefill per context/2 new tokens;
// positions restart, as RoPE needs). A prompt longer than the context is seen through its last
// context - 1 tokens. Each of these is told once through `note` (a line for the terminal).
std::vector<int32_t> sample(nn::Transformer& model, const std::vector<int32_t>& prompt,
                            const SampleOptions& opt,
                            const std::function<void(const std::string&)>& note = nullptr);

// Draw one id from logits [V] (CPU floats) with temperature and top-k.
int32_t draw_token(const std::vector<float>& logits, double temperature, int64_t top_k, Generator& g);

}  // namespace monet
