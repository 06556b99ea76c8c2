// `monet bench --out DIR`: the run as JSON (bench.json), every number the Markdown table prints
// and the per-step timings behind its medians, for scripts/exp/bench.py.
#include <nlohmann/json.hpp>

#include "core/settings.h"
#include "eval/bench.h"

namespace monet {

nlohmann::json bench_json(const BenchResult& r) {
  using nlohmann::json;
  auto side = [](const BenchSide& s) {
    return json{{"tokens_per_second", s.tokens_per_second},
                {"step_seconds", s.step_seconds},
                {"losses", s.losses},
                {"max_rss_bytes", s.max_rss_bytes}};
  };
  json j;
  j["threads"] = r.threads;
  j["steps"] = r.options.steps;
  j["warmup"] = r.options.warmup;
  j["rounds"] = r.options.rounds;
  j["peaks"] = json::array();
  for (const GemmPeak& p : r.peaks)
    j["peaks"].push_back({{"gemm", gemm_backend_name(p.mode.backend)},
                          {"precision", precision_name(p.mode.precision)},
                          {"gflops", p.gflops}});
  j["rows"] = json::array();
  for (const BenchRow& w : r.rows) {
    json row = {{"config", w.config},
                {"kind", w.kind},
                {"precision", w.precision},
                {"gemm", w.gemm},
                {"d", w.d},
                {"layers", w.layers},
                {"params", w.params},
                {"tokens_per_step", w.tokens_per_step},
                {"step_flops", w.step_flops},
                {"gflops", w.gflops},
                {"peak_gflops", w.peak_gflops},
                {"peak_bytes", w.peak_bytes},
                {"cpp", side(w.cpp)}};
    if (w.has_torch)
      row["torch"] = side(w.torch), row["torch_version"] = w.torch_version,
      row["torch_threads"] = w.torch_threads;
    j["rows"].push_back(std::move(row));
  }
  return j;
}

}  // namespace monet
