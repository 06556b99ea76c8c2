// Domain masking: the selection rule, the before/after evaluation and its report (see mask.h).
#include "eval/mask.h"

#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/random.h"
#include "eval/control.h"
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

// Each expert's routing mass on the selection split: its probability averaged over the domains.
std::vector<double> routing_mass(const std::vector<std::vector<double>>& prob) {
  std::vector<double> mass(prob.front().size(), 0.0);
  for (const auto& p : prob)
    for (size_t e = 0; e < mass.size(); ++e) mass[e] += p[e] / static_cast<double>(prob.size());
  return mass;
}

// Mean and sample standard deviation of the control rows' Δ bpb for one masked domain, per
// evaluated column.
struct ControlSummary {
  std::vector<double> mean, sd;
  int draws = 0;
};
ControlSummary summarise_controls(const MaskResult& r, const std::string& domain) {
  ControlSummary c;
  const size_t cols = r.before.size();
  c.mean.assign(cols, 0.0);
  c.sd.assign(cols, 0.0);
  std::vector<std::vector<double>> d(cols);
  for (const MaskRow& row : r.rows)
    if (row.control_of == domain)
      for (size_t k = 0; k < cols; ++k) d[k].push_back(row.after[k].bpb - r.before[k].bpb);
  c.draws = static_cast<int>(d.front().size());
  for (size_t k = 0; k < cols && c.draws > 0; ++k) {
    for (double v : d[k]) c.mean[k] += v / c.draws;
    for (double v : d[k]) c.sd[k] += (v - c.mean[k]) * (v - c.mean[k]);
    c.sd[k] = c.draws > 1 ? std::sqrt(c.sd[k] / (c.draws - 1)) : 0.0;
  }
  return c;
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
  std::vector<std::vector<double>> mass;  // [site][expert]
  for (const auto& p : prob) mass.push_back(routing_mass(p));
  MONET_CHECK(!opt.control || opt.control_draws > 0, "mask: --control-draws must be positive");

  const Tokenizer& tok = opt.tokenizer ? *opt.tokenizer : byte_tokenizer();  // bytes for bpb
  say("val loss of the full model");
  r.before = evaluate(model, domains, opt.batch, T, opt.eval_windows, nullptr, tok);
  Generator gen(opt.seed);
  for (size_t d : targets) {
    MaskRow row;
    row.masked = r.domains[d];
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
    for (int draw = 0; draw < opt.control_draws; ++draw) {
      MaskRow control;
      control.masked = fmt::format("random (as {}) #{}", r.domains[d], draw + 1);
      control.control_of = r.domains[d];
      for (size_t s = 0; s < r.sites.size(); ++s) {
        const MatchedDraw m = matched_random_experts(mass[s], chosen[s], gen);
        em.remove(s, m.experts);
        control.removed.push_back(static_cast<int64_t>(m.experts.size()));
        control.mass_ratio.push_back(m.ratio);
      }
      say(fmt::format("val loss without random experts matched to {} ({} of {})", r.domains[d],
                      draw + 1, opt.control_draws));
      control.after = evaluate(model, domains, opt.batch, T, opt.eval_windows, nullptr, tok);
      em.restore();
      r.rows.push_back(std::move(control));
    }
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
  std::vector<const MaskRow*> masked;
  double lo = INFINITY, hi = -INFINITY;
  for (const MaskRow& row : r.rows) {
    for (double m : row.mass_ratio) lo = std::min(lo, m), hi = std::max(hi, m);
    if (!row.control_of.empty()) continue;
    masked.push_back(&row);
    o += fmt::format("| {} |", row.masked);
    for (size_t s = 0; s < r.sites.size(); ++s)
      o += fmt::format(
          " {} of {} ({:.1f}%) |", row.removed[s], r.sites[s].experts,
          100.0 * static_cast<double>(row.removed[s]) / static_cast<double>(r.sites[s].experts));
    o += "\n";
  }
  const size_t cols = r.before.size();  // domains, then "all"
  const int draws = masked.empty() ? 0 : summarise_controls(r, masked[0]->masked).draws;
  if (draws > 0)
    o += fmt::format(
        "\nControl: {} random sets per masked domain, each of the selection's size per site and "
        "{:.3f}–{:.3f}× its routing mass.\n",
        draws, lo, hi);
  o += "\n";
  if (masked.size() == 1) {
    const MaskRow& row = *masked[0];
    const ControlSummary c = summarise_controls(r, row.masked);
    o += "| evaluated | loss before | loss after | Δ loss | bpb before | bpb after | Δ bpb |";
    o += draws ? fmt::format(
                     " Δ bpb, random control (mean ± sd of {}) |\n"
                     "|---|---:|---:|---:|---:|---:|---:|---:|\n",
                     draws)
               : "\n|---|---:|---:|---:|---:|---:|---:|\n";
    for (size_t k = 0; k < cols; ++k) {
      const DomainEval &b = r.before[k], &a = row.after[k];
      o += fmt::format("| {} | {:.4f} | {:.4f} | {:+.4f} | {:.4f} | {:.4f} | {:+.4f} |", b.domain,
                       b.loss, a.loss, a.loss - b.loss, b.bpb, a.bpb, a.bpb - b.bpb);
      o += draws ? fmt::format(" {:+.4f} ± {:.4f} |\n", c.mean[k], c.sd[k]) : "\n";
    }
    return o;
  }
  o += "Δ bpb (after − before); rows: masked domain (then its random control, mean ± sd over the "
       "draws), columns: evaluated domain.\n\n| masked ↓ evaluated → |";
  for (size_t k = 0; k < cols; ++k) o += fmt::format(" {} |", r.before[k].domain);
  o += "\n|---|";
  for (size_t k = 0; k < cols; ++k) o += "---:|";
  o += "\n| (bpb before) |";
  for (size_t k = 0; k < cols; ++k) o += fmt::format(" {:.4f} |", r.before[k].bpb);
  o += "\n";
  for (const MaskRow* row : masked) {
    o += fmt::format("| {} |", row->masked);
    for (size_t k = 0; k < cols; ++k) {
      const double delta = row->after[k].bpb - r.before[k].bpb;
      const bool own = row->masked == r.before[k].domain;
      o += own ? fmt::format(" **{:+.4f}** |", delta) : fmt::format(" {:+.4f} |", delta);
    }
    o += "\n";
    if (draws == 0) continue;
    const ControlSummary c = summarise_controls(r, row->masked);
    o += fmt::format("| random (as {}) |", row->masked);
    for (size_t k = 0; k < cols; ++k) o += fmt::format(" {:+.4f} ± {:.4f} |", c.mean[k], c.sd[k]);
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
  for (const MaskRow& row : r.rows) {
    json jr = {{"masked", row.masked}, {"removed", row.removed}, {"after", evals(row.after)}};
    if (!row.control_of.empty())
      jr["control_of"] = row.control_of, jr["mass_ratio"] = row.mass_ratio;
    j["rows"].push_back(std::move(jr));
  }
  write_file_atomic(out / "mask.json", j.dump(1));

  std::vector<std::string> cats;
  for (const DomainEval& e : r.before) cats.push_back(e.domain);
  std::vector<Series> series;
  for (const MaskRow& row : r.rows) {
    if (!row.control_of.empty()) continue;
    Series s{"masked " + row.masked, {}, {}};
    for (size_t c = 0; c < r.before.size(); ++c) s.y.push_back(row.after[c].bpb - r.before[c].bpb);
    series.push_back(std::move(s));
    const ControlSummary c = summarise_controls(r, row.masked);
    if (c.draws > 0)
      series.push_back(
          {fmt::format("random (as {}), mean of {}", row.masked, c.draws), {}, c.mean});
  }
  PlotOptions po;
  po.title = fmt::format("Domain masking ({}, {}): change in val bpb", r.kind, r.rule.str());
  po.xlabel = "evaluated domain";
  po.ylabel = "Δ bits per byte";
  po.width = 820;
  write_file_atomic(out / "mask.svg", svg_bar_plot(cats, series, po));
}

}  // namespace monet::interp
