#include "train/sample.h"

#include <fmt/format.h>

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
                            const SampleOptions& opt,
                            const std::function<void(const std::string&)>& note) {
  MONET_CHECK(!prompt.empty(), "sample: the prompt is empty (give at least one character)");
  const int64_t context = model.config().context;
  NoGradGuard ng;
  model.eval();
  Generator g(opt.seed);
  std::vector<int32_t> ids = prompt;
  // The tokens the model sees: the prompt, or its last context - 1 tokens when it is longer.
  int64_t seen = std::min<int64_t>(static_cast<int64_t>(prompt.size()), context - 1);
  if (seen < static_cast<int64_t>(prompt.size()) && note)
    note(
        fmt::format("the prompt has {} tokens and the model's context is {}: only its last {} are "
                    "seen",
                    prompt.size(), context, seen));
  auto caches = model.make_caches();
  auto window = [&](int64_t n) {
    return from_vector(std::vector<int32_t>(ids.end() - n, ids.end()), {1, n});
  };
  Tensor logits = model.forward(window(seen), caches);
  bool slid = false;
  for (int64_t i = 0; i < opt.tokens; ++i) {
    Tensor last = logits.slice(1, logits.size(1) - 1, logits.size(1)).reshape({-1});
    const int32_t next = draw_token(last.to_vector<float>(), opt.temperature, opt.top_k, g);
    ids.push_back(next);
    if (i + 1 == opt.tokens || (opt.stop && opt.stop(next))) break;
    if (seen < context) {
      logits = model.forward(from_vector<int32_t>({next}, {1, 1}), caches);
      ++seen;
      continue;
    }
    // The window is full: the last context/2 tokens are run again as a fresh prompt (their RoPE
    // positions restart at 0), one prefill per context/2 new tokens.
    if (!slid && note)
      note(
          fmt::format("generation passed the context of {} tokens: the window slides (the last "
                      "{} tokens are re-read every {} new tokens)",
                      context, context / 2, context - context / 2));
    slid = true;
    seen = std::max<int64_t>(1, context / 2);
    caches = model.make_caches();
    logits = model.forward(window(seen), caches);
  }
  return ids;
}

}  // namespace monet
