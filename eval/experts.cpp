// Expert analysis: the expert view of a model and the streaming statistics (see experts.h); the
// report is experts_report.cpp.
#include "eval/experts.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "core/error.h"
#include "monet/registry.h"

namespace monet::interp {

namespace fs = std::filesystem;

std::string ExpertSite::label(int64_t e) const {
  return sqrt_n > 0 ? fmt::format("({}, {})", e / sqrt_n, e % sqrt_n) : fmt::format("{}", e);
}

// ---- the expert view of a model ----

ExpertModel::ExpertModel(nn::Transformer& model, std::string kind)
    : model_(model), kind_(std::move(kind)) {
  const auto& blocks = model.blocks();
  // Hooks spliced into the blocks that have experts (sparse autoencoders, whose experts are
  // their features) when there are any; else every block's feed-forward layer.
  struct Found {
    moe::ExpertLayer* layer;
    int block;
    std::string name;  // of its site, unless it shares a routing
  };
  std::vector<Found> found;
  for (size_t l = 0; l < blocks.size(); ++l)
    for (nn::HookSite hs : {nn::HookSite::Mlp, nn::HookSite::Resid})
      if (auto* e = dynamic_cast<moe::ExpertLayer*>(blocks[l]->hook(hs).get()))
        found.push_back(
            {e, static_cast<int>(l), fmt::format("layer {} {}", l, hook_site_name(hs))});
  const bool hooks = !found.empty();
  for (size_t l = 0; !hooks && l < blocks.size(); ++l) {
    auto* layer = dynamic_cast<moe::ExpertLayer*>(&blocks[l]->ffn());
    if (!layer) {
      std::vector<std::string> with;
      for (const moe::FfnKind* k : moe::ffn_kinds())
        if (k->has_experts) with.push_back(k->name);
      throw Error(
          fmt::format("experts: layer {} of this {} model has no experts; expert analysis needs "
                      "model.ffn.kind {}, or a sparse autoencoder spliced in (--sae)",
                      l, kind_, fmt::join(with, ", ")));
    }
    found.push_back({layer, static_cast<int>(l), fmt::format("layer {}", l)});
  }
  std::vector<const void*> keys;  // the routing key of each site
  for (const Found& f : found) {
    const void* key = f.layer->routing_key();
    if (keys.empty() || keys.back() != key) {
      const bool shared = key != static_cast<const void*>(f.layer);
      sites_.push_back({shared ? fmt::format("group {}", sites_.size()) : f.name,
                        {},
                        f.layer->num_experts(),
                        f.layer->expert_grid()});
      site_layers_.emplace_back();
      keys.push_back(key);
    } else {
      MONET_CHECK(sites_.back().experts == f.layer->num_experts(),
                  "experts: layer {} shares a routing with layer {} but has {} experts, not {}",
                  f.block, sites_.back().layers.front(), f.layer->num_experts(),
                  sites_.back().experts);
    }
    sites_.back().layers.push_back(f.block);
    site_layers_.back().push_back(f.layer);
  }
  MONET_CHECK(!sites_.empty(), "experts: the model has no layers");
  for (ExpertSite& site : sites_) {  // "group 0 (layers 0-3)"
    if (site.name.rfind("group", 0) != 0) continue;
    const auto& ls = site.layers;
    site.name += ls.size() == 1 ? fmt::format(" (layer {})", ls.front())
                                : fmt::format(" (layers {}-{})", ls.front(), ls.back());
  }
}

TokenScores ExpertModel::scores(size_t s) const {
  MONET_CHECK(s < sites_.size(), "experts: site {} of {}", s, sites_.size());
  return site_layers_[s].front()->expert_scores();
}

// Removal is "drop exactly this expert's weighted term from the layer output, change nothing
// else", the same definition for every kind (monet/expert_layer.h), so their numbers compare. In a
// MONET routing group the G layers share the scores, and the expert is removed from each of them.
// PEER's removed singleton is NOT excluded from retrieval: excluding it from the top-k would let
// the next expert take its slot and renormalise the softmax over a different set, i.e. change the
// other experts' contributions too.
void ExpertModel::remove(size_t s, const std::vector<int64_t>& experts) {
  MONET_CHECK(s < sites_.size(), "experts: site {} of {}", s, sites_.size());
  const ExpertSite& site = sites_[s];
  for (int64_t e : experts)
    MONET_CHECK(e >= 0 && e < site.experts, "experts: expert {} outside [0, {}) in {}", e,
                site.experts, site.name);
  for (moe::ExpertLayer* layer : site_layers_[s]) layer->remove_experts(experts);
}

void ExpertModel::restore() {
  for (size_t s = 0; s < sites_.size(); ++s) remove(s, {});
}

// ---- streaming top-K ----

bool better_context(const ContextRef& a, const ContextRef& b) {
  if (a.score != b.score) return a.score > b.score;
  if (a.domain != b.domain) return a.domain < b.domain;
  return a.offset < b.offset;
}

StreamingTopK::StreamingTopK(int64_t experts, int64_t k)
    : k_(k), heaps_(static_cast<size_t>(k > 0 ? experts : 0)) {}

void StreamingTopK::push(int64_t expert, const ContextRef& c) {
  if (k_ <= 0) return;
  // A min-heap under better_context: the root is the worst of the K kept.
  std::vector<ContextRef>& h = heaps_[static_cast<size_t>(expert)];
  if (static_cast<int64_t>(h.size()) < k_) {
    h.push_back(c);
    std::push_heap(h.begin(), h.end(), better_context);
  } else if (better_context(c, h.front())) {
    std::pop_heap(h.begin(), h.end(), better_context);
    h.back() = c;
    std::push_heap(h.begin(), h.end(), better_context);
  }
}

std::vector<ContextRef> StreamingTopK::best(int64_t expert) const {
  if (k_ <= 0) return {};
  std::vector<ContextRef> v = heaps_[static_cast<size_t>(expert)];
  std::sort(v.begin(), v.end(), better_context);
  return v;
}

// ---- collecting ----

std::vector<std::vector<double>> SiteStats::probabilities() const {
  std::vector<std::vector<double>> p(mass.size());
  for (size_t d = 0; d < mass.size(); ++d) {
    p[d].resize(mass[d].size());
    for (size_t e = 0; e < mass[d].size(); ++e)
      p[d][e] = tokens[d] > 0 ? mass[d][e] / static_cast<double>(tokens[d]) : 0.0;
  }
  return p;
}

const std::vector<int32_t>& split_tokens(const Domain& d, bool train_split) {
  return train_split ? d.train : d.val;
}

ExpertStats collect_expert_stats(ExpertModel& em, const std::vector<Domain>& domains,
                                 const CollectOptions& opt,
                                 const std::function<void(int, int)>& progress) {
  nn::Transformer& model = em.model();
  const int64_t T = opt.context > 0 ? opt.context : model.config().context;
  const size_t D = domains.size();
  ExpertStats st;
  st.kind = em.kind();
  for (const Domain& d : domains) st.domains.push_back(d.name);
  std::vector<size_t> which;  // sites analysed
  for (size_t s = 0; s < em.sites().size(); ++s) {
    const auto& ls = em.sites()[s].layers;
    if (opt.layer < 0 || std::find(ls.begin(), ls.end(), opt.layer) != ls.end()) which.push_back(s);
  }
  MONET_CHECK(!which.empty(), "experts: --layer {} is not a layer of the model (it has {})",
              opt.layer, model.blocks().size());
  for (size_t s : which) {
    const int64_t n = em.sites()[s].experts;
    SiteStats ss;
    ss.site = em.sites()[s];
    ss.tokens.assign(D, 0);
    ss.mass.assign(D, std::vector<double>(static_cast<size_t>(n), 0.0));
    ss.active.assign(D, std::vector<int64_t>(static_cast<size_t>(n), 0));
    ss.active_hist.assign(D, {});
    ss.top = StreamingTopK(n, opt.top_k);
    st.sites.push_back(std::move(ss));
  }

  std::vector<std::vector<EvalBatch>> batches;
  int total = 0, done = 0;
  for (const Domain& d : domains) {
    batches.push_back(eval_batches(split_tokens(d, opt.train_split), opt.batch, T, opt.windows,
                                   model.config().device));
    total += static_cast<int>(batches.back().size());
  }
  NoGradGuard ng;
  const bool was_training = model.is_training();
  model.eval();
  for (size_t d = 0; d < D; ++d) {
    for (const EvalBatch& b : batches[d]) {
      model.forward(b.inputs);
      const std::vector<int32_t> targets = b.targets.to_vector<int32_t>();
      const int64_t rows = b.inputs.size(0), len = b.inputs.size(1);
      for (size_t k = 0; k < which.size(); ++k) {
        SiteStats& ss = st.sites[k];
        const TokenScores ts = em.scores(which[k]);
        MONET_CHECK(ts.tokens() == rows * len, "experts: {} scored {} tokens of {}", ss.site.name,
                    ts.tokens(), rows * len);
        std::vector<double>& mass = ss.mass[d];
        std::vector<int64_t>& active = ss.active[d];
        std::vector<int64_t>& hist = ss.active_hist[d];
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t t = 0; t < len; ++t) {
            const int64_t tok = r * len + t;
            if (targets[tok] == kIgnoreTarget) continue;  // streamed by an earlier window
            const int64_t offset = b.starts[r] + t;       // the token's position in the domain
            int64_t on = 0;
            for (int64_t q = ts.begin[tok]; q < ts.begin[tok + 1]; ++q) {
              const int32_t e = ts.expert[q];
              const float v = ts.score[q];
              mass[e] += v;
              if (v > kActiveThreshold) ++active[e], ++on;
              ss.top.push(e, {v, static_cast<int32_t>(d), offset});
            }
            if (static_cast<int64_t>(hist.size()) <= on) hist.resize(on + 1, 0);
            ++hist[on];
            ++ss.tokens[d];
          }
      }
      if (progress) progress(++done, total);
    }
  }
  model.train(was_training);
  return st;
}

}  // namespace monet::interp
