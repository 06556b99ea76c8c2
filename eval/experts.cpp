// Expert analysis: the expert view of a model, streaming statistics, and the report (see
// experts.h).
#include "eval/experts.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "core/error.h"
#include "eval/experts_html.h"
#include "eval/mask.h"
#include "moe/registry.h"
#include "util/fileio.h"
#include "util/plot.h"

namespace monet::interp {

namespace fs = std::filesystem;

std::string ExpertSite::label(int64_t e) const {
  return sqrt_n > 0 ? fmt::format("({}, {})", e / sqrt_n, e % sqrt_n) : fmt::format("{}", e);
}

// ---- the expert view of a model ----

ExpertModel::ExpertModel(nn::Transformer& model, std::string kind)
    : model_(model), kind_(std::move(kind)) {
  const auto& blocks = model.blocks();
  std::vector<const void*> keys;  // the routing key of each site
  for (size_t l = 0; l < blocks.size(); ++l) {
    auto* layer = dynamic_cast<moe::ExpertLayer*>(&blocks[l]->ffn());
    if (!layer) {
      std::vector<std::string> with;
      for (const moe::FfnKind* k : moe::ffn_kinds())
        if (k->has_experts) with.push_back(k->name);
      throw Error(
          fmt::format("experts: layer {} of this {} model has no experts; expert analysis needs "
                      "model.ffn.kind {}",
                      l, kind_, fmt::join(with, ", ")));
    }
    layers_.push_back(layer);
    const int li = static_cast<int>(l);
    const void* key = layer->routing_key();
    if (keys.empty() || keys.back() != key) {
      const bool shared = key != static_cast<const void*>(layer);
      sites_.push_back(
          {shared ? fmt::format("group {}", sites_.size()) : fmt::format("layer {}", l),
           {},
           layer->num_experts(),
           layer->expert_grid()});
      keys.push_back(key);
    } else {
      MONET_CHECK(sites_.back().experts == layer->num_experts(),
                  "experts: layer {} shares a routing with layer {} but has {} experts, not {}", l,
                  sites_.back().layers.front(), layer->num_experts(), sites_.back().experts);
    }
    sites_.back().layers.push_back(li);
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
  return layers_[static_cast<size_t>(sites_[s].layers.front())]->expert_scores();
}

// Removal is "drop exactly this expert's weighted term from the layer output, change nothing
// else", the same definition for every kind (moe/expert_layer.h), so their numbers compare. In a
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
  for (int layer : site.layers) layers_[static_cast<size_t>(layer)]->remove_experts(experts);
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

// ---- contexts as text ----

namespace {
bool continuation(int32_t byte) {
  return (byte & 0xC0) == 0x80;
}
std::string bytes(const std::vector<int32_t>& t, int64_t from, int64_t to) {
  std::string s;
  for (int64_t i = from; i < to; ++i) s += static_cast<char>(t[i]);
  return s;
}
}  // namespace

ContextText context_text(const std::vector<int32_t>& t, int64_t offset, int64_t window) {
  const int64_t n = static_cast<int64_t>(t.size());
  MONET_CHECK(offset >= 0 && offset < n, "context: offset {} outside [0, {})", offset, n);
  int64_t lo = offset, hi = offset + 1;  // the token, widened to its whole character
  while (lo > 0 && continuation(t[lo]) && offset - lo < 3) --lo;
  while (hi < n && continuation(t[hi]) && hi - lo < 4) ++hi;
  int64_t a = std::max<int64_t>(0, lo - window), b = std::min(n, hi + window);
  while (a < lo && continuation(t[a])) ++a;           // do not start inside a character
  while (b > hi && b < n && continuation(t[b])) --b;  // nor end inside one
  return {bytes(t, a, lo), bytes(t, lo, hi), bytes(t, hi, b)};
}

// ---- the report ----

namespace {

// p_top / p_second (null when p_second = 0) and the top domain, for sorting by selectivity.
struct Selectivity {
  size_t top = 0;
  double ratio = 0;  // +inf when only one domain routes to the expert
};
Selectivity selectivity(const std::vector<std::vector<double>>& p, size_t e) {
  Selectivity s;
  double first = -1, second = 0;
  for (size_t d = 0; d < p.size(); ++d) {
    if (p[d][e] > first)
      second = std::max(second, first), first = p[d][e], s.top = d;
    else
      second = std::max(second, p[d][e]);
  }
  s.ratio = second > 0 ? first / second : std::numeric_limits<double>::infinity();
  return s;
}

double mean_active(const std::vector<int64_t>& hist) {
  double n = 0, sum = 0;
  for (size_t k = 0; k < hist.size(); ++k)
    n += static_cast<double>(hist[k]), sum += static_cast<double>(k * hist[k]);
  return n > 0 ? sum / n : 0.0;
}

nlohmann::json site_json(const SiteStats& ss, const ExpertStats& st,
                         const std::vector<Domain>& domains, const ReportOptions& opt) {
  using nlohmann::json;
  const auto p = ss.probabilities();
  const size_t D = st.domains.size();
  json j;
  j["name"] = ss.site.name;
  j["layers"] = ss.site.layers;
  j["experts"] = ss.site.experts;
  j["tokens"] = ss.tokens;
  std::vector<int64_t> hist;
  for (const auto& h : ss.active_hist) {
    if (hist.size() < h.size()) hist.resize(h.size(), 0);
    for (size_t k = 0; k < h.size(); ++k) hist[k] += h[k];
  }
  j["active_histogram"] = hist;
  j["mean_active"] = mean_active(hist);
  std::vector<double> per_domain;
  for (const auto& h : ss.active_hist) per_domain.push_back(mean_active(h));
  j["mean_active_per_domain"] = per_domain;
  std::vector<size_t> specialised;
  for (size_t d = 0; d < D; ++d)
    specialised.push_back(specialised_experts(p, d, SelectionRule{}).size());
  j["specialised_ratio2"] = specialised;
  json experts = json::array();
  int64_t unused = 0;
  for (int64_t e = 0; e < ss.site.experts; ++e) {
    double total = 0;
    std::vector<double> pe;
    std::vector<int64_t> ae;
    for (size_t d = 0; d < D; ++d)
      total += ss.mass[d][e], pe.push_back(p[d][e]), ae.push_back(ss.active[d][e]);
    if (total <= 0) {
      ++unused;
      continue;
    }
    const Selectivity sel = selectivity(p, static_cast<size_t>(e));
    json x;
    x["id"] = e;
    x["label"] = ss.site.label(e);
    x["prob"] = pe;
    x["active"] = ae;
    x["top_domain"] = st.domains[sel.top];
    x["selectivity"] = std::isfinite(sel.ratio) ? json(sel.ratio) : json(nullptr);
    json ctx = json::array();
    for (const ContextRef& c : ss.top.best(e)) {
      const ContextText t =
          context_text(split_tokens(domains[static_cast<size_t>(c.domain)], opt.train_split),
                       c.offset, opt.window);
      ctx.push_back({{"score", c.score},
                     {"domain", st.domains[static_cast<size_t>(c.domain)]},
                     {"offset", c.offset},
                     {"left", t.left},
                     {"token", t.token},
                     {"right", t.right}});
    }
    x["contexts"] = std::move(ctx);
    experts.push_back(std::move(x));
  }
  j["unused"] = unused;
  j["expert_list"] = std::move(experts);
  return j;
}

std::string histogram_svg(const nlohmann::json& site) {
  const std::vector<int64_t> hist = site["active_histogram"];
  double n = 0;
  for (int64_t h : hist) n += static_cast<double>(h);
  std::vector<std::string> cats;
  Series s{"tokens", {}, {}};
  for (size_t k = 0; k < hist.size(); ++k)
    cats.push_back(std::to_string(k)),
        s.y.push_back(n > 0 ? static_cast<double>(hist[k]) / n : 0.0);
  PlotOptions po;
  po.title = fmt::format("{}: experts active per token (score > {})",
                         site["name"].get<std::string>(), kActiveThreshold);
  po.xlabel = "active experts";
  po.ylabel = "fraction of tokens";
  po.width = 720;
  po.height = 300;
  return svg_bar_plot(cats, {s}, po);
}

}  // namespace

void write_expert_report(const ExpertStats& st, const std::vector<Domain>& domains,
                         const fs::path& out, const ReportOptions& opt) {
  using nlohmann::json;
  MONET_CHECK(domains.size() == st.domains.size(),
              "experts report: {} domains for statistics of {}", domains.size(), st.domains.size());
  fs::create_directories(out);
  json j;
  j["kind"] = st.kind;
  j["title"] = opt.title;
  j["source"] = opt.source;
  j["split"] = opt.train_split ? "train" : "val";
  j["active_threshold"] = kActiveThreshold;
  j["domains"] = st.domains;
  j["sites"] = json::array();
  std::vector<std::string> svgs;
  for (const SiteStats& ss : st.sites) {
    j["sites"].push_back(site_json(ss, st, domains, opt));
    svgs.push_back(histogram_svg(j["sites"].back()));
  }
  const std::string text = j.dump(-1, ' ', false, json::error_handler_t::replace);
  write_file_atomic(out / "experts.json", text);
  write_file_atomic(out / "experts.html", experts_html_page(text, svgs));
}

std::string expert_summary(const ExpertStats& st) {
  std::string o;
  for (const SiteStats& ss : st.sites) {
    const auto p = ss.probabilities();
    int64_t tokens = 0, used = 0;
    for (int64_t t : ss.tokens) tokens += t;
    for (int64_t e = 0; e < ss.site.experts; ++e) {
      double m = 0;
      for (const auto& md : ss.mass) m += md[e];
      used += m > 0;
    }
    o += fmt::format("{} ({} experts): {} tokens, {} experts ever routed to\n", ss.site.name,
                     ss.site.experts, tokens, used);
    o += "| domain | tokens | mean active experts / token | specialised (ratio ≥ 2) "
         "|\n|---|---:|---:|---:|\n";
    for (size_t d = 0; d < st.domains.size(); ++d)
      o += fmt::format("| {} | {} | {:.1f} | {} |\n", st.domains[d], ss.tokens[d],
                       mean_active(ss.active_hist[d]),
                       specialised_experts(p, d, SelectionRule{}).size());
  }
  return o;
}

}  // namespace monet::interp
