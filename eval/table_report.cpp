// `monet table`'s outputs: the Markdown table, CSV, JSON and the log-log plots (eval/table.h).
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "eval/table.h"
#include "util/fileio.h"
#include "util/plot.h"

namespace monet {

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::string mib(double bytes) {
  return fmt::format("{:.1f}", bytes / (1 << 20));
}

}  // namespace

std::string table_markdown(const TableResult& r) {
  const TableOptions& o = r.options;
  std::string s = fmt::format(
      "## One layer per kind at d = {}, B·T = {} tokens, {}; median of {} after {} warm-up ({:.0f} "
      "s)\n\n",
      o.d, o.batch * o.context, r.device_name, o.repeats, o.warmup, r.seconds);
  s += "| kind | N | params | expert params | fwd µs/tok | fwd+bwd µs/tok | retrieval FLOP/tok | "
       "query FLOP/tok | expert FLOP/tok | fwd FLOP/tok | fwd+bwd FLOP/tok | weights MiB | saved "
       "MiB | "
       "grads MiB | transient MiB | peak MiB |\n";
  s += "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const TableRow& w : r.rows) {
    const std::string n =
        w.n ? fmt::format("2^{}", static_cast<int>(std::lround(std::log2(w.n)))) : "—";
    if (!w.measured) {
      s += fmt::format("| {} | {} | {} | {} | {} |||||||||||\n", w.kind->name, n, w.params,
                       w.expert_params, w.note);
      continue;
    }
    s += fmt::format(
        "| {} | {} | {} | {} | {:.3f} | {:.3f} | {:.3g} | {:.3g} | {:.3g} | {:.3g} | {:.3g} | {} | "
        "{} | {} | {} | {} |\n",
        w.kind->name, n, w.params, w.expert_params, w.fwd_us, w.step_us,
        w.flops(nn::kFlopsRetrieval), w.flops(nn::kFlopsQuery), w.flops(nn::kFlopsExperts),
        w.fwd_flops_total, w.step_flops_total, mib(w.mem_weights), mib(w.mem_saved),
        mib(w.mem_grads), mib(w.mem_transient), mib(w.mem_peak));
  }
  s += "\n## Log-log slopes against N (paper: MONET Table 1)\n\n";
  s += "| kind | quantity | measured slope | fit R² | paper | within ±0.1 | points "
       "|\n|---|---|---:|---:|---:|---|---:|\n";
  for (const TableSlope& sl : r.slopes)
    s += fmt::format("| {} | {} | {:.3f} | {:.3f} | {} | {} | {} |\n", sl.kind->name, sl.quantity,
                     sl.measured, sl.r2, sl.paper < 0 ? "—" : fmt::format("{:.1f}", sl.paper),
                     sl.paper < 0 ? "" : (std::abs(sl.measured - sl.paper) <= 0.1 ? "yes" : "NO"),
                     sl.points);
  for (const std::string& w : slope_warnings(r)) s += "\n**Warning:** " + w + "\n";
  s += "\n## The papers' models, counted on the meta device\n\n| model | parameters | paper "
       "|\n|---|---:|---:|\n";
  for (const PaperCount& p : r.paper)
    s += fmt::format("| {} | {} ({:.3f}B) | {} |\n", p.model, p.params, p.params / 1e9,
                     p.paper > 0 ? fmt::format("{:.3f}B", p.paper) : "—");
  return s;
}

namespace {

std::string table_csv(const TableResult& r) {
  std::string s =
      "kind,n,sqrt_n,measured,params,expert_params,param_bytes,fwd_us_per_token,step_us_per_token,"
      "retrieval_flops,query_flops,expert_flops,fwd_flops,step_flops,mem_weights,mem_input,mem_"
      "saved,"
      "mem_grads,mem_transient,mem_peak,note\n";
  for (const TableRow& w : r.rows)
    s += fmt::format("{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},\"{}\"\n",
                     w.kind->name, w.n, w.sqrt_n, w.measured ? 1 : 0, w.params, w.expert_params,
                     w.param_bytes, w.fwd_us, w.step_us, w.flops(nn::kFlopsRetrieval),
                     w.flops(nn::kFlopsQuery), w.flops(nn::kFlopsExperts), w.fwd_flops_total,
                     w.step_flops_total, w.mem_weights, w.mem_input, w.mem_saved, w.mem_grads,
                     w.mem_transient, w.mem_peak, w.note);
  return s;
}

json table_json(const TableResult& r) {
  const TableOptions& o = r.options;
  json j = {{"d", o.d},
            {"batch", o.batch},
            {"context", o.context},
            {"repeats", o.repeats},
            {"warmup", o.warmup},
            {"device", r.device_name},
            {"threads", r.threads},
            {"seconds", r.seconds}};
  for (const TableRow& w : r.rows)
    j["rows"].push_back({{"kind", w.kind->name},
                         {"n", w.n},
                         {"sqrt_n", w.sqrt_n},
                         {"measured", w.measured},
                         {"note", w.note},
                         {"params", w.params},
                         {"expert_params", w.expert_params},
                         {"param_bytes", w.param_bytes},
                         {"predicted_bytes", w.predicted_bytes},
                         {"fwd_us_per_token", w.fwd_us},
                         {"step_us_per_token", w.step_us},
                         {"fwd_flops_per_token", w.fwd_flops},
                         {"fwd_flops_total", w.fwd_flops_total},
                         {"step_flops_total", w.step_flops_total},
                         {"memory",
                          {{"weights", w.mem_weights},
                           {"input", w.mem_input},
                           {"saved", w.mem_saved},
                           {"grads", w.mem_grads},
                           {"transient", w.mem_transient},
                           {"peak", w.mem_peak}}}});
  for (const TableSlope& s : r.slopes)
    j["slopes"].push_back({{"kind", s.kind->name},
                           {"quantity", s.quantity},
                           {"measured", s.measured},
                           {"r2", s.r2},
                           {"paper", s.paper < 0 ? json(nullptr) : json(s.paper)},
                           {"points", s.points}});
  for (const PaperCount& p : r.paper)
    j["paper_models"].push_back({{"model", p.model},
                                 {"params", p.params},
                                 {"paper_billions", p.paper > 0 ? json(p.paper) : json(nullptr)}});
  return j;
}

// One series per kind; dense (no N) is drawn flat across the sweep's range.
std::vector<Series> series_of(const TableResult& r, double (*value)(const TableRow&),
                              bool all_rows) {
  std::vector<Series> out;
  double lo = 0, hi = 0;
  for (const TableRow& w : r.rows) {
    if (w.n == 0) continue;
    lo = lo > 0 ? std::min(lo, double(w.n)) : double(w.n);
    hi = std::max(hi, double(w.n));
  }
  for (const moe::FfnKind* kind : r.options.kinds) {
    Series s{kind->label, {}, {}};
    for (const TableRow& w : r.rows) {
      if (w.kind != kind || (!w.measured && !all_rows)) continue;
      if (w.n == 0) {
        s.name = kind->label + " (no N)";
        s.x = {lo, hi};
        s.y = {value(w), value(w)};
      } else {
        s.x.push_back(static_cast<double>(w.n));
        s.y.push_back(value(w));
      }
    }
    if (!s.x.empty()) out.push_back(std::move(s));
  }
  // Series with the same points (MONET-HD and -VD retrieve alike) would draw one line over the
  // other, the first unseen: one line, named after both.
  std::vector<Series> merged;
  for (Series& s : out) {
    auto same = std::find_if(merged.begin(), merged.end(),
                             [&](const Series& m) { return m.x == s.x && m.y == s.y; });
    if (same != merged.end())
      same->name += " = " + s.name;
    else
      merged.push_back(std::move(s));
  }
  return merged;
}

}  // namespace

void write_table_outputs(const TableResult& r, const fs::path& dir) {
  fs::create_directories(dir);
  write_file_atomic(dir / "table.md", table_markdown(r));
  write_file_atomic(dir / "table.csv", table_csv(r));
  write_file_atomic(dir / "table.json", table_json(r).dump(2) + "\n");
  const std::string sub =
      fmt::format("d = {}, {}", r.options.d,
                  r.options.device.is_cpu() ? fmt::format("{}, {} thread{}", r.options.device.str(),
                                                          r.threads, r.threads == 1 ? "" : "s")
                                            : r.options.device.str());
  struct Plot {
    const char* file;
    const char* title;
    const char* ylabel;
    double (*value)(const TableRow&);
    bool all_rows;
  };
  const Plot plots[] = {
      {"time_vs_n.svg", "fwd+bwd time per token", "µs / token",
       [](const TableRow& w) { return w.step_us; }, false},
      {"flops_vs_n.svg", "forward FLOPs per token", "FLOPs / token",
       [](const TableRow& w) { return w.fwd_flops_total; }, false},
      {"retrieval_flops_vs_n.svg", "retrieval FLOPs per token, forward", "FLOPs / token",
       [](const TableRow& w) { return w.flops(nn::kFlopsRetrieval); }, false},
      {"params_vs_n.svg", "parameters of one layer", "parameters",
       [](const TableRow& w) { return static_cast<double>(w.params); }, true},
      {"memory_vs_n.svg", "peak memory of a training step", "MiB",
       [](const TableRow& w) { return static_cast<double>(w.mem_peak) / (1 << 20); }, false},
  };
  for (const Plot& p : plots) {
    PlotOptions po;
    po.title = fmt::format("{} ({})", p.title, sub);
    po.xlabel = "N (experts)";
    po.ylabel = p.ylabel;
    po.logx = po.logy = true;
    for (const TableRow& w : r.rows)  // a tick at each N the table has
      if (w.n > 0 && std::find(po.xticks.begin(), po.xticks.end(), double(w.n)) == po.xticks.end())
        po.xticks.push_back(static_cast<double>(w.n));
    write_file_atomic(dir / p.file, svg_line_plot(series_of(r, p.value, p.all_rows), po));
  }
}

}  // namespace monet
