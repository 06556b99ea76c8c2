// Expert analysis, the report: contexts as text, experts.json, experts.html and the terminal
// summary (see experts.h).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "eval/experts.h"
#include "eval/experts_html.h"
#include "eval/mask.h"
#include "util/fileio.h"
#include "util/plot.h"

namespace monet::interp {

namespace fs = std::filesystem;

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

ContextText context_text(const std::vector<int32_t>& t, int64_t offset, int64_t window,
                         const Tokenizer* tokenizer) {
  const int64_t n = static_cast<int64_t>(t.size());
  MONET_CHECK(offset >= 0 && offset < n, "context: offset {} outside [0, {})", offset, n);
  if (tokenizer != nullptr) {  // whole tokens: a quarter as many as the bytes asked for
    const int64_t w = std::max<int64_t>(1, window / 4);
    auto text = [&](int64_t from, int64_t to) {
      return tokenizer->decode(std::vector<int32_t>(t.begin() + from, t.begin() + to));
    };
    return {text(std::max<int64_t>(0, offset - w), offset), text(offset, offset + 1),
            text(offset + 1, std::min(n, offset + 1 + w))};
  }
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

// A number as the page shows it, 4 significant digits: the JSON embedded in experts.html is
// most of its weight, and 17-digit probabilities tripled it for nothing.
double sig4(double x) {
  if (!std::isfinite(x) || x == 0) return x;
  const double scale = std::pow(10.0, 3 - std::floor(std::log10(std::abs(x))));
  return std::round(x * scale) / scale;
}
std::vector<double> sig4(std::vector<double> xs) {
  for (double& x : xs) x = sig4(x);
  return xs;
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
  j["mean_active"] = sig4(mean_active(hist));
  std::vector<double> per_domain;
  for (const auto& h : ss.active_hist) per_domain.push_back(mean_active(h));
  j["mean_active_per_domain"] = sig4(per_domain);
  std::vector<size_t> specialised;
  for (size_t d = 0; d < D; ++d)
    specialised.push_back(specialised_experts(p, d, SelectionRule{}).size());
  j["specialised_ratio2"] = specialised;
  // The experts routed to, by routing mass; the report lists the max_experts heaviest (a released
  // model routes to most of its 262,144 per group, far more than a page can show).
  std::vector<std::pair<double, int64_t>> used;
  for (int64_t e = 0; e < ss.site.experts; ++e) {
    double total = 0;
    for (size_t d = 0; d < D; ++d) total += ss.mass[d][e];
    if (total > 0) used.emplace_back(-total, e);
  }
  const int64_t unused = ss.site.experts - static_cast<int64_t>(used.size());
  const size_t listed =
      opt.max_experts > 0 ? std::min(used.size(), size_t(opt.max_experts)) : used.size();
  std::partial_sort(used.begin(), used.begin() + static_cast<std::ptrdiff_t>(listed), used.end());
  used.resize(listed);
  std::sort(used.begin(), used.end(),
            [](const auto& a, const auto& b) { return a.second < b.second; });
  j["used"] = ss.site.experts - unused;
  j["listed"] = listed;
  json experts = json::array();
  for (const auto& [neg_mass, e] : used) {
    std::vector<double> pe;
    std::vector<int64_t> ae;
    for (size_t d = 0; d < D; ++d) pe.push_back(p[d][e]), ae.push_back(ss.active[d][e]);
    const Selectivity sel = selectivity(p, static_cast<size_t>(e));
    json x;
    x["id"] = e;
    x["label"] = ss.site.label(e);
    x["prob"] = sig4(pe);
    x["active"] = ae;
    x["top_domain"] = st.domains[sel.top];
    x["selectivity"] = std::isfinite(sel.ratio) ? json(sig4(sel.ratio)) : json(nullptr);
    json ctx = json::array();
    for (const ContextRef& c : ss.top.best(e)) {
      const ContextText t =
          context_text(split_tokens(domains[static_cast<size_t>(c.domain)], opt.train_split),
                       c.offset, opt.window, opt.tokenizer);
      ctx.push_back({{"score", sig4(c.score)},
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
