// Domain masking: the selection rule, the before/after evaluation and its report (see mask.h).
#include "eval/mask.h"

#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/random.h"
#include "util/fileio.h"
#include "util/plot.h"

namespace monet::interp {

namespace fs = std::filesystem;

std::string SelectionRule::str() const {
  return fmt::format("ratio:{:g}", ratio);
}

SelectionRule parse_rule(const std::string& s) {
  const std::string prefix = "ratio:";
  MONET_CHECK(s.rfind(prefix, 0) == 0, "mask: rule '{}' is not ratio:R (e.g. ratio:2)", s);
  SelectionRule r;
  size_t used = 0;
  try {
    r.ratio = std::stod(s.substr(prefix.size()), &used);
  } catch (const std::exception&) {
    used = 0;
  }
  MONET_CHECK(
      used > 0 && used == s.size() - prefix.size() && std::isfinite(r.ratio) && r.ratio >= 1,
      "mask: rule '{}' needs a number R >= 1 after 'ratio:'", s);
  return r;
}

std::vector<int64_t> specialised_experts(const std::vector<std::vector<double>>& prob,
                                         size_t domain, const SelectionRule& rule) {
  MONET_CHECK(domain < prob.size(), "mask: domain {} of {}", domain, prob.size());
  const size_t n = prob[domain].size();
  for (const auto& p : prob)
    MONET_CHECK(p.size() == n, "mask: routing table rows of {} and {} experts", p.size(), n);
  std::vector<int64_t> out;
  for (size_t e = 0; e < n; ++e) {
    double second = 0;  // the largest probability on any other domain
    for (size_t d = 0; d < prob.size(); ++d)
      if (d != domain) second = std::max(second, prob[d][e]);
    const double p = prob[domain][e];
    if (p > 0 && p >= rule.ratio * second) out.push_back(static_cast<int64_t>(e));
  }
  return out;
}

namespace {

// `count` distinct experts of [0, n), drawn uniformly (partial Fisher-Yates), increasing.
std::vector<int64_t> random_experts(int64_t n, int64_t count, Generator& gen) {
  std::vector<int64_t> all(static_cast<size_t>(n));
  for (int64_t e = 0; e < n; ++e) all[static_cast<size_t>(e)] = e;
  for (int64_t i = 0; i < count; ++i)
    std::swap(all[static_cast<size_t>(i)], all[static_cast<size_t>(i + gen.randint(n - i))]);
  all.resize(static_cast<size_t>(count));
  std::sort(all.begin(), all.end());
  return all;
}

}  // namespace

MaskResult run_mask(ExpertModel& em, const std::vector<Domain>& domains, const MaskOptions& opt,
                    const std::function<void(const std::string&)>& progress) {
  auto say = [&](const std::string& what) {
    if (progress) progress(what);
  };
  MaskResult r;
  r.kind = em.kind();
  r.sites = em.sites();
  r.rule = opt.rule;
  r.select_windows = opt.select_windows;
  r.eval_windows = opt.eval_windows;
  for (const Domain& d : domains) r.domains.push_back(d.name);
  std::vector<size_t> targets;
  for (size_t d = 0; d < domains.size(); ++d)
    if (opt.domain == "all" || opt.domain == r.domains[d]) targets.push_back(d);
  MONET_CHECK(!targets.empty(), "mask: no domain '{}' (domains: {}, or all)", opt.domain,
              fmt::join(r.domains, ", "));

  nn::Transformer& model = em.model();
  const int64_t T = model.config().context;
  em.restore();
  say(fmt::format("routing probabilities on {} train windows per domain", opt.select_windows));
  CollectOptions co;
  co.batch = opt.batch;
  co.windows = opt.select_windows;
  co.top_k = 0;
  co.train_split = true;
  const ExpertStats st = collect_expert_stats(em, domains, co);
  std::vector<std::vector<std::vector<double>>> prob;  // [site][domain][expert]
  for (const SiteStats& ss : st.sites) prob.push_back(ss.probabilities());

  const Tokenizer& tok = opt.tokenizer ? *opt.tokenizer : byte_tokenizer();  // bytes for bpb
  say("val loss of the full model");
  r.before = evaluate(model, domains, opt.batch, T, opt.eval_windows, nullptr, tok);
  Generator gen(opt.seed);
  for (size_t d : targets) {
    MaskRow row{r.domains[d], {}, {}};
    std::vector<std::vector<int64_t>> chosen;
    for (size_t s = 0; s < r.sites.size(); ++s) {
      chosen.push_back(specialised_experts(prob[s], d, opt.rule));
      row.removed.push_back(static_cast<int64_t>(chosen.back().size()));
      em.remove(s, chosen.back());
    }
    say(fmt::format("val loss without the {} experts", r.domains[d]));
    row.after = evaluate(model, domains, opt.batch, T, opt.eval_windows, nullptr, tok);
    em.restore();
    r.rows.push_back(std::move(row));
    if (!opt.control) continue;
    MaskRow control{fmt::format("random (as {})", r.domains[d]), {}, {}};
    for (size_t s = 0; s < r.sites.size(); ++s) {
      em.remove(s, random_experts(r.sites[s].experts, static_cast<int64_t>(chosen[s].size()), gen));
      control.removed.push_back(static_cast<int64_t>(chosen[s].size()));
    }
    say(fmt::format("val loss without as many random experts as {}", r.domains[d]));
    control.after = evaluate(model, domains, opt.batch, T, opt.eval_windows, nullptr, tok);
    em.restore();
    r.rows.push_back(std::move(control));
  }
  return r;
}

std::string mask_markdown(const MaskResult& r) {
  std::string o = fmt::format(
      "Domain masking of a {} model: rule {} (routing probabilities on {} train windows per "
      "domain), val loss on {} windows per domain.\n\n",
      r.kind, r.rule.str(), r.select_windows,
      r.eval_windows > 0 ? std::to_string(r.eval_windows) : std::string("all"));
  // Experts removed per site (a MONET site is a routing group: the count holds for each layer).
  o += "| masked |";
  for (const ExpertSite& s : r.sites) o += fmt::format(" {} |", s.name);
  o += "\n|---|";
  for (size_t s = 0; s < r.sites.size(); ++s) o += "---:|";
  o += "\n";
  for (const MaskRow& row : r.rows) {
    o += fmt::format("| {} |", row.masked);
    for (size_t s = 0; s < r.sites.size(); ++s)
      o += fmt::format(
          " {} of {} ({:.1f}%) |", row.removed[s], r.sites[s].experts,
          100.0 * static_cast<double>(row.removed[s]) / static_cast<double>(r.sites[s].experts));
    o += "\n";
  }
  o += "\n";
  const size_t cols = r.before.size();  // domains, then "all"
  if (r.rows.size() == 1 || (r.rows.size() == 2 && r.rows[1].masked.rfind("random", 0) == 0)) {
    const MaskRow& row = r.rows[0];
    const bool control = r.rows.size() == 2;
    o += "| evaluated | loss before | loss after | Δ loss | bpb before | bpb after | Δ bpb |";
    o += control ? " Δ bpb, random control |\n|---|---:|---:|---:|---:|---:|---:|---:|\n"
                 : "\n|---|---:|---:|---:|---:|---:|---:|\n";
    for (size_t c = 0; c < cols; ++c) {
      const DomainEval &b = r.before[c], &a = row.after[c];
      o += fmt::format("| {} | {:.4f} | {:.4f} | {:+.4f} | {:.4f} | {:.4f} | {:+.4f} |", b.domain,
                       b.loss, a.loss, a.loss - b.loss, b.bpb, a.bpb, a.bpb - b.bpb);
      o += control ? fmt::format(" {:+.4f} |\n", r.rows[1].after[c].bpb - b.bpb) : "\n";
    }
    return o;
  }
  o += "Δ bpb (after − before); rows: masked domain, columns: evaluated domain.\n\n| masked ↓ "
       "evaluated → |";
  for (size_t c = 0; c < cols; ++c) o += fmt::format(" {} |", r.before[c].domain);
  o += "\n|---|";
  for (size_t c = 0; c < cols; ++c) o += "---:|";
  o += "\n| (bpb before) |";
  for (size_t c = 0; c < cols; ++c) o += fmt::format(" {:.4f} |", r.before[c].bpb);
  o += "\n";
  for (const MaskRow& row : r.rows) {
    o += fmt::format("| {} |", row.masked);
    for (size_t c = 0; c < cols; ++c) {
      const double delta = row.after[c].bpb - r.before[c].bpb;
      const bool own = row.masked == r.before[c].domain;
      o += own ? fmt::format(" **{:+.4f}** |", delta) : fmt::format(" {:+.4f} |", delta);
    }
    o += "\n";
  }
  return o;
}

void write_mask_outputs(const MaskResult& r, const fs::path& out) {
  using nlohmann::json;
  fs::create_directories(out);
  write_file_atomic(out / "mask.md", mask_markdown(r));
  auto evals = [](const std::vector<DomainEval>& v) {
    json a = json::array();
    for (const DomainEval& e : v)
      a.push_back({{"domain", e.domain}, {"loss", e.loss}, {"bpb", e.bpb}, {"tokens", e.tokens}});
    return a;
  };
  json j;
  j["kind"] = r.kind;
  j["rule"] = r.rule.str();
  j["select_windows"] = r.select_windows;
  j["eval_windows"] = r.eval_windows;
  j["domains"] = r.domains;
  j["sites"] = json::array();
  for (const ExpertSite& s : r.sites)
    j["sites"].push_back({{"name", s.name}, {"layers", s.layers}, {"experts", s.experts}});
  j["before"] = evals(r.before);
  j["rows"] = json::array();
  for (const MaskRow& row : r.rows)
    j["rows"].push_back(
        {{"masked", row.masked}, {"removed", row.removed}, {"after", evals(row.after)}});
  write_file_atomic(out / "mask.json", j.dump(1));

  std::vector<std::string> cats;
  for (const DomainEval& e : r.before) cats.push_back(e.domain);
  std::vector<Series> series;
  for (const MaskRow& row : r.rows) {
    Series s{"masked " + row.masked, {}, {}};
    for (size_t c = 0; c < r.before.size(); ++c) s.y.push_back(row.after[c].bpb - r.before[c].bpb);
    series.push_back(std::move(s));
  }
  PlotOptions po;
  po.title = fmt::format("Domain masking ({}, {}): change in val bpb", r.kind, r.rule.str());
  po.xlabel = "evaluated domain";
  po.ylabel = "Δ bits per byte";
  po.width = 820;
  write_file_atomic(out / "mask.svg", svg_bar_plot(cats, series, po));
}

}  // namespace monet::interp
