// Text generation with a KV cache: the prompt is run once, then each new token is one position
// through every layer, attending over the cached keys and values.
#pragma once
#include <cstdint>
#include <vector>

#include "core/random.h"
#include "nn/transformer.h"

namespace monet {

struct SampleOptions {
  int64_t tokens = 200;       // new tokens to generate (capped by the context)
  double temperature = 0.8;   // 0: greedy
  int64_t top_k = 0;          // 0: the whole vocabulary
  uint64_t seed = 0;
};

// The prompt's ids followed by the generated ids.
std::vector<int32_t> sample(nn::Transformer& model, const std::vector<int32_t>& prompt,
                            const SampleOptions& opt);

// Draw one id from logits [V] (CPU floats) with temperature and top-k.
int32_t draw_token(const std::vector<float>& logits, double temperature, int64_t top_k, Generator& g);

}  // namespace monet
