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
#include "monet/monet_layer.h"
#include "monet/peer.h"
#include "monet/smoe.h"
#include "train/fileio.h"
#include "train/plot.h"

namespace monet::interp {

namespace fs = std::filesystem;

std::string ExpertSite::label(int64_t e) const {
  return sqrt_n > 0 ? fmt::format("({}, {})", e / sqrt_n, e % sqrt_n) : fmt::format("{}", e);
}

// ---- the expert view of a model ----

ExpertModel::ExpertModel(nn::Transformer& model) : model_(model) {
  const auto& blocks = model.blocks();
  for (size_t l = 0; l < blocks.size(); ++l) {
    nn::FeedForward* f = &blocks[l]->ffn();
    const int layer = static_cast<int>(l);
    std::string kind;
    if (auto* m = dynamic_cast<moe::MonetFeedForward*>(f)) {
      kind = m->options().vertical ? "monet_vd" : "monet_hd";
      if (m->owns_router()) {
        const int64_t s = m->options().sqrt_n;
        sites_.push_back({"", {}, s * s, s});
      }
      MONET_CHECK(!sites_.empty(), "experts: MONET layer {} reuses a router no earlier layer owns",
                  l);
      sites_.back().layers.push_back(layer);
    } else if (auto* s = dynamic_cast<moe::SmoeFeedForward*>(f)) {
      kind = "smoe";
      sites_.push_back({fmt::format("layer {}", l), {layer}, s->options().experts, 0});
    } else if (auto* p = dynamic_cast<moe::PeerFeedForward*>(f)) {
      kind = "peer";
      sites_.push_back(
          {fmt::format("layer {}", l), {layer}, p->options().num_experts(), p->options().sqrt_n});
    } else {
      throw Error(fmt::format(
          "experts: layer {} has a dense feed-forward layer; expert analysis needs model.ffn.kind "
          "monet_hd, monet_vd, smoe or peer",
          l));
    }
    MONET_CHECK(kind_.empty() || kind_ == kind, "experts: layer {} is {} but earlier layers are {}",
                l, kind, kind_);
    kind_ = kind;
  }
  MONET_CHECK(!sites_.empty(), "experts: the model has no layers");
  if (kind_ == "monet_hd" || kind_ == "monet_vd") {
    for (size_t g = 0; g < sites_.size(); ++g) {
      const auto& ls = sites_[g].layers;
      sites_[g].name = ls.size() == 1
                           ? fmt::format("group {} (layer {})", g, ls.front())
                           : fmt::format("group {} (layers {}-{})", g, ls.front(), ls.back());
    }
  }
}

namespace {

template <class Layer>
Layer& layer_as(nn::Transformer& model, int layer) {
  return dynamic_cast<Layer&>(model.blocks()[static_cast<size_t>(layer)]->ffn());
}

// Sums (expert, score) contributions of one token into a dense scratch row, remembering which
// entries were touched, so that emitting and clearing cost O(touched), never O(N).
class SparseRow {
 public:
  explicit SparseRow(int64_t n)
      : acc_(static_cast<size_t>(n), 0.0f), seen_(static_cast<size_t>(n), 0) {}
  void add(int32_t e, float v) {
    if (!seen_[e]) seen_[e] = 1, touched_.push_back(e);
    acc_[e] += v;
  }
  void emit(TokenScores& out) {
    std::sort(touched_.begin(), touched_.end());
    for (int32_t e : touched_) {
      if (acc_[e] > 0) out.expert.push_back(e), out.score.push_back(acc_[e]);
      acc_[e] = 0, seen_[e] = 0;
    }
    touched_.clear();
    out.begin.push_back(static_cast<int64_t>(out.expert.size()));
  }

 private:
  std::vector<float> acc_;
  std::vector<uint8_t> seen_;
  std::vector<int32_t> touched_;
};

}  // namespace

TokenScores ExpertModel::scores(size_t s) const {
  MONET_CHECK(s < sites_.size(), "experts: site {} of {}", s, sites_.size());
  const ExpertSite& site = sites_[s];
  TokenScores out;
  out.begin.push_back(0);
  SparseRow row(site.experts);
  if (kind_ == "monet_hd" || kind_ == "monet_vd") {
    // Σ_h ĝ1_hi ĝ2_hj over the non-zero entries only: the router's softmax gives exactly 0 to
    // the sub-experts it did not keep.
    const moe::Routing& r =
        layer_as<moe::MonetFeedForward>(model_, site.layers.front()).last_routing();
    MONET_CHECK(r.g1.defined(), "experts: {} has no routing yet (run a forward pass first)",
                site.name);
    const int64_t n = r.g1.size(0) * r.g1.size(1), H = r.g1.size(2), S = r.g1.size(3);
    const std::vector<float> g1 = r.g1.to_vector<float>(), g2 = r.g2.to_vector<float>();
    std::vector<std::pair<int32_t, float>> a, b;
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t h = 0; h < H; ++h) {
        const float* p1 = g1.data() + (t * H + h) * S;
        const float* p2 = g2.data() + (t * H + h) * S;
        a.clear(), b.clear();
        for (int32_t i = 0; i < S; ++i) {
          if (p1[i] > 0) a.emplace_back(i, p1[i]);
          if (p2[i] > 0) b.emplace_back(i, p2[i]);
        }
        for (const auto& [i, gi] : a)
          for (const auto& [j, gj] : b) row.add(static_cast<int32_t>(i * S + j), gi * gj);
      }
      row.emit(out);
    }
  } else if (kind_ == "smoe") {
    const moe::Route& r = layer_as<moe::SmoeFeedForward>(model_, site.layers.front()).last_route();
    MONET_CHECK(r.idx.defined(), "experts: {} has no routing yet (run a forward pass first)",
                site.name);
    const int64_t n = r.idx.size(0), k = r.idx.size(1);
    const std::vector<int32_t> idx = r.idx.to_vector<int32_t>();
    const std::vector<float> g = r.gates.to_vector<float>();
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t c = 0; c < k; ++c) row.add(idx[t * k + c], g[t * k + c]);
      row.emit(out);
    }
  } else {  // peer: Σ over the heads that retrieved the singleton
    const auto& last = layer_as<moe::PeerFeedForward>(model_, site.layers.front()).last_retrieval();
    MONET_CHECK(last.indices.defined(),
                "experts: {} has no retrieval yet (run a forward pass first)", site.name);
    const int64_t hk = last.indices.size(2) * last.indices.size(3);
    const int64_t n = last.indices.numel() / hk;
    const std::vector<int32_t> idx = last.indices.to_vector<int32_t>();
    const std::vector<float> g = last.gates.to_vector<float>();
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t c = 0; c < hk; ++c) row.add(idx[t * hk + c], g[t * hk + c]);
      row.emit(out);
    }
  }
  return out;
}

// Removal is "drop exactly this expert's weighted term from the layer output, change nothing
// else", the same definition for the three kinds, so their numbers compare:
//   MONET  MonetFeedForward::set_removed_experts subtracts Σ_h ĝ1_hi ĝ2_hj E_ij(x) for each pair
//          (monet/masking.h), in every layer of the routing group (they share the scores).
//   SMoE   SmoeFeedForward::set_expert_mask: routing and gates unchanged, pairs routed to a
//          removed expert contribute 0, the other gate of the token is not renormalised.
//   PEER   PeerFeedForward::set_expert_mask: the removed singleton is NOT excluded from retrieval;
//          retrieval and the softmax gates are computed as if nothing were removed, and its term
//          g_he e(x) is then multiplied by 0. Excluding it from the top-k would let the next
//          expert take its slot and renormalise the softmax over a different set, i.e. change
//          the other experts' contributions too; zeroing its output removes that expert alone,
//          as the MONET subtraction does.
void ExpertModel::remove(size_t s, const std::vector<int64_t>& experts) {
  MONET_CHECK(s < sites_.size(), "experts: site {} of {}", s, sites_.size());
  const ExpertSite& site = sites_[s];
  for (int64_t e : experts)
    MONET_CHECK(e >= 0 && e < site.experts, "experts: expert {} outside [0, {}) in {}", e,
                site.experts, site.name);
  for (int layer : site.layers) {
    if (kind_ == "monet_hd" || kind_ == "monet_vd") {
      moe::ExpertPairs pairs;
      for (int64_t e : experts) pairs.emplace_back(e / site.sqrt_n, e % site.sqrt_n);
      layer_as<moe::MonetFeedForward>(model_, layer).set_removed_experts(std::move(pairs));
    } else if (kind_ == "smoe") {
      std::vector<bool> mask;
      if (!experts.empty()) {
        mask.assign(static_cast<size_t>(site.experts), false);
        for (int64_t e : experts) mask[static_cast<size_t>(e)] = true;
      }
      layer_as<moe::SmoeFeedForward>(model_, layer).set_expert_mask(std::move(mask));
    } else {
      layer_as<moe::PeerFeedForward>(model_, layer).set_expert_mask(experts);
    }
  }
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
