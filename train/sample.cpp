#include "train/sample.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/autograd.h"
#include "core/ops.h"

namespace monet {

int32_t draw_token(const std::vector<float>& logits, double temperature, int64_t top_k, Generator& g) {
  const int64_t V = static_cast<int64_t>(logits.size());
  std::vector<int32_t> order(V);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  if (temperature <= 0) return order[0];
  const int64_t k = top_k > 0 ? std::min(top_k, V) : V;
  std::vector<double> p(k);
  double total = 0;
  for (int64_t i = 0; i < k; ++i) {
    p[i] = std::exp((logits[order[i]] - logits[order[0]]) / temperature);
    total += p[i];
  }
  double u = g.uniform() * total;
  for (int64_t i = 0; i < k; ++i) {
    if ((u -= p[i]) < 0) return order[i];
  }
  return order[k - 1];
}

std::vector<int32_t> sample(nn::Transformer& model, const std::vector<int32_t>& prompt,
                            const SampleOptions& opt) {
  MONET_CHECK(!prompt.empty(), "sample: the prompt is empty (give at least one character)");
  const int64_t context = model.config().context;
  MONET_CHECK(static_cast<int64_t>(prompt.size()) < context,
              "sample: the prompt has {} tokens, the model's context is {}", prompt.size(), context);
  NoGradGuard ng;
  model.eval();
  Generator g(opt.seed);
  std::vector<int32_t> ids = prompt;
  auto caches = model.make_caches();
  const int64_t n = std::min<int64_t>(opt.tokens, context - static_cast<int64_t>(prompt.size()));
  Tensor logits = model.forward(from_vector(prompt, {1, static_cast<int64_t>(prompt.size())}), caches);
  for (int64_t i = 0; i < n; ++i) {
    Tensor last = logits.slice(1, logits.size(1) - 1, logits.size(1)).reshape({-1});
    const int32_t next = draw_token(last.to_vector<float>(), opt.temperature, opt.top_k, g);
    ids.push_back(next);
    if (i + 1 < n) logits = model.forward(from_vector<int32_t>({next}, {1, 1}), caches);
  }
  return ids;
}

}  // namespace monet
