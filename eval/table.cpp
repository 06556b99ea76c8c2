#include "eval/table.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>

#include "core/error.h"
#include "core/flops.h"
#include "core/gemm_mode.h"
#include "core/machine.h"
#include "core/memory.h"
#include "core/ops.h"
#include "core/random.h"
#include "monet/registry.h"
#include "nn/ffn.h"
#include "train/config.h"
#include "train/model.h"
#include "util/fileio.h"
#include "util/timing.h"
#ifdef MONET_WITH_CUDA
#include "core/cuda/device.h"
#endif

namespace monet {

using json = nlohmann::json;
namespace fs = std::filesystem;

TableOptions TableOptions::quick() {
  TableOptions o;
  o.sqrt_n = {16, 32, 64};
  o.many_sqrt_n = {};
  o.batch = 4;
  o.context = 64;
  o.repeats = 2;
  return o;
}

double TableRow::flops(const std::string& category) const {
  auto it = fwd_flops.find(category);
  return it == fwd_flops.end() ? 0.0 : it->second;
}

json layer_settings(const TableOptions& o, const moe::FfnKind& kind, int64_t sqrt_n) {
  json f = kind.sweep ? kind.sweep(sqrt_n) : json::object();
  f["kind"] = kind.name;
  for (const std::string& s : o.sets) {  // "smoe.dim=32"
    const size_t dot = s.find('.'), eq = s.find('=');
    MONET_CHECK(dot != std::string::npos && eq != std::string::npos && dot < eq,
                "table --set '{}': want KIND.KEY=VALUE, e.g. smoe.dim=32", s);
    const std::string k = s.substr(0, dot), key = s.substr(dot + 1, eq - dot - 1),
                      value = s.substr(eq + 1);
    const moe::FfnKind& target = moe::ffn_kind(k, fmt::format("table --set '{}': the kind", s));
    MONET_CHECK(key != "kind" && key != target.n_key, "table --set '{}': the sweep sets {} itself",
                s, key);
    if (&target != &kind) continue;
    json v = json::parse(value, nullptr, false);
    f[key] = v.is_discarded() ? json(value) : v;
  }
  return f;
}

namespace {

using Clock = std::chrono::steady_clock;

std::shared_ptr<nn::FeedForward> build_layer(const TableOptions& o, const moe::FfnKind& kind,
                                             int64_t sqrt_n, Device device, Generator& gen) {
  // Parsed as a model config, so a bad --set is reported with its dotted key (model.ffn.dim).
  Config c = parse_config(
      json{{"model", {{"d", o.d}, {"heads", 1}, {"ffn", layer_settings(o, kind, sqrt_n)}}}});
  return ffn_factory(c.model, nn::ParamOptions{DType::F32, device, 0.02}, gen)(0);
}

// Table 1's "expert parameters" (the row's is_expert_param): what the experts themselves hold,
// without the router, the product keys or PEER's query network; dense: the MLP is one always-on
// expert.
int64_t expert_parameters(const moe::FfnKind& kind, const nn::Module& layer) {
  int64_t n = 0;
  for (const auto& [name, p] : layer.named_parameters())
    if (kind.is_expert_param(name)) n += p.numel();
  return n;
}

TableRow measure(const TableOptions& o, const moe::FfnKind& kind, int64_t sqrt_n, double budget) {
  TableRow r;
  r.kind = &kind;
  r.sqrt_n = kind.sweep ? sqrt_n : 0;
  r.n = r.sqrt_n * r.sqrt_n;
  {  // shapes first, on the meta device: exact counts, and the predicted size
    Generator gen(o.seed);
    auto meta = build_layer(o, kind, sqrt_n, Device::meta(), gen);
    for (const auto& [name, p] : meta->named_parameters()) {
      r.params += p.numel();
      r.param_bytes += p.numel() * static_cast<int64_t>(dtype_size(p.dtype()));
    }
    r.expert_params = expert_parameters(kind, *meta);
  }
  r.predicted_bytes = 2.0 * static_cast<double>(r.param_bytes);  // weights + their gradients
  if (r.predicted_bytes > budget) {
    r.note = fmt::format(
        "not run: weights + gradients alone need {:.1f} GiB, over the {:.1f} GiB budget",
        r.predicted_bytes / (1 << 30), budget / (1 << 30));
    return r;
  }

  Generator gen(o.seed);
  auto layer = build_layer(o, kind, sqrt_n, o.device, gen);
  layer->train();
  const int64_t tokens = o.batch * o.context;
  Tensor x =
      normal({o.batch, o.context, o.d}, 0.0, 1.0, gen, DType::F32, o.device).requires_grad_();
  // The loss Σ y ⊙ w sends a random upstream gradient w into the layer, as a network would.
  Tensor w = normal({o.batch, o.context, o.d}, 0.0, 1.0, gen, DType::F32, o.device);
  auto forward = [&] {
    Tensor loss = sum(mul(layer->forward(x), w));
    Tensor aux = layer->aux_loss();
    return aux.defined() ? add(loss, aux) : loss;
  };
  auto clear = [&] {
    layer->zero_grad();
    x.set_grad(Tensor());
  };
  for (int i = 0; i < o.warmup; ++i) {
    clear();
    forward().backward();
  }

  {  // FLOPs of one step, forward and backward apart; the FlopScopes of the layer split them
    clear();
    Tensor loss;
    double fwd = 0, bwd = 0;
    {
      FlopCounter c;
      loss = forward();
      for (const auto& [cat, n] : c.by_category())
        r.fwd_flops[cat] = static_cast<double>(n) / tokens;
      fwd = static_cast<double>(c.total());
    }
    {
      FlopCounter c;
      loss.backward();
      bwd = static_cast<double>(c.total());
    }
    r.fwd_flops_total = fwd / tokens;
    r.step_flops_total = (fwd + bwd) / tokens;
  }

  {  // memory of one step, from the tracking allocator
    clear();
    synchronize(o.device);
    const DeviceType dt = o.device.type;
    memory::reset_peak(dt);
    const int64_t c0 = memory::stats(dt).current;
    int64_t c1 = 0;
    {
      Tensor loss = forward();
      synchronize(o.device);
      c1 = memory::stats(dt).current;
      loss.backward();
      synchronize(o.device);
    }  // the graph, and with it every saved activation, is released here
    const MemoryStats s = memory::stats(dt);
    r.mem_weights = r.param_bytes;
    r.mem_input = c0 - r.param_bytes;  // x, w and the layer's buffers (running statistics)
    r.mem_saved = c1 - c0;
    r.mem_grads = s.current - c0;
    r.mem_transient = s.peak - c1 - r.mem_grads;
    r.mem_peak = s.peak;
  }

  std::vector<double> fwd_s, step_s;
  for (int i = 0; i < o.repeats; ++i) {
    clear();
    synchronize(o.device);
    const Clock::time_point t0 = Clock::now();
    Tensor loss = forward();
    synchronize(o.device);
    fwd_s.push_back(seconds_since(t0));
    loss.backward();
    synchronize(o.device);
    step_s.push_back(seconds_since(t0));
  }
  r.fwd_us = median(fwd_s) * 1e6 / static_cast<double>(tokens);
  r.step_us = median(step_s) * 1e6 / static_cast<double>(tokens);
  r.measured = true;
  return r;
}

}  // namespace

LogLogFit loglog_fit(const std::vector<double>& x, const std::vector<double>& y) {
  MONET_CHECK(x.size() == y.size(), "loglog_slope: {} x values for {} y values", x.size(),
              y.size());
  double sx = 0, sy = 0, sxx = 0, sxy = 0, syy = 0;
  int n = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (!(x[i] > 0) || !(y[i] > 0)) continue;
    const double lx = std::log(x[i]), ly = std::log(y[i]);
    sx += lx, sy += ly, sxx += lx * lx, sxy += lx * ly, syy += ly * ly, ++n;
  }
  const double den = n * sxx - sx * sx;
  MONET_CHECK(n >= 2 && den > 1e-12, "loglog_slope: needs two points with distinct positive x");
  LogLogFit f;
  f.slope = (n * sxy - sx * sy) / den;
  // R² = the squared correlation of log x and log y; a flat y (no variance) fits exactly.
  const double vy = n * syy - sy * sy;
  f.r2 = vy > 1e-12 * std::max(1.0, std::abs(n * syy))
             ? (n * sxy - sx * sy) * (n * sxy - sx * sy) / (den * vy)
             : 1.0;
  return f;
}

double loglog_slope(const std::vector<double>& x, const std::vector<double>& y) {
  return loglog_fit(x, y).slope;
}

std::vector<std::string> slope_warnings(const TableResult& r) {
  std::vector<std::string> out;
  for (const TableSlope& s : r.slopes) {
    if (s.quantity != "fwd+bwd time" || (s.measured >= 0 && s.r2 >= 0.8)) continue;
    out.push_back(fmt::format(
        "{} {}: slope {:.3f} with R² {:.2f} over {} points is noise, not a trend — the timings "
        "at this size are too short or the machine was busy; measure with more --repeats, "
        "without --quick, on a quiet machine",
        s.kind->name, s.quantity, s.measured, s.r2, s.points));
  }
  return out;
}

std::vector<TableSlope> fit_slopes(const std::vector<TableRow>& rows) {
  // Table 1's exponents are the rows' (monet/registry.h); a kind without them is not fitted.
  std::vector<TableSlope> out;
  for (const moe::FfnKind* kind : moe::ffn_kinds()) {
    if (!kind->table1) continue;
    const moe::FfnKind::Exponents exps = *kind->table1;
    std::vector<const TableRow*> all, run;
    for (const TableRow& r : rows)
      if (r.kind == kind) {
        all.push_back(&r);
        if (r.measured) run.push_back(&r);
      }
    auto fit = [&](const std::string& what, const std::vector<const TableRow*>& pts, double expo,
                   auto value) {
      std::vector<double> x, y;
      for (const TableRow* r : pts) x.push_back(static_cast<double>(r->n)), y.push_back(value(*r));
      if (pts.size() < 2) return;
      const LogLogFit f = loglog_fit(x, y);
      out.push_back({kind, what, f.slope, f.r2, expo, static_cast<int>(pts.size())});
    };
    // Parameters are exact for every N (counted on the meta device), run or not.
    fit("expert params", all, exps.expert_params,
        [](const TableRow& r) { return double(r.expert_params); });
    fit("all params", all, -1, [](const TableRow& r) { return double(r.params); });
    fit("retrieval FLOPs", run, exps.retrieval,
        [](const TableRow& r) { return r.flops(nn::kFlopsRetrieval); });
    fit("expert FLOPs", run, -1, [](const TableRow& r) { return r.flops(nn::kFlopsExperts); });
    fit("fwd+bwd time", run, -1, [](const TableRow& r) { return r.step_us; });
    fit("peak memory", run, -1, [](const TableRow& r) { return double(r.mem_peak); });
  }
  return out;
}

std::vector<PaperCount> paper_param_counts() {
  // MONET Table 6: layers, d, attention heads, m, H; √N = 512, vocabulary 32000, context 2048.
  struct Size {
    const char* name;
    int64_t layers, d, heads, m, h;
  };
  const Size sizes[] = {
      {"850M", 24, 1536, 12, 12, 6}, {"1.4B", 24, 2048, 16, 16, 8}, {"4.1B", 32, 3072, 24, 24, 12}};
  // Table 8 gives the 1.4B figures only.
  const std::map<std::string, double> published = {{"MONET-VD 1.4B, group 4", 1.465},
                                                   {"MONET-VD 1.4B, group 1", 1.767},
                                                   {"dense LLaMA 1.4B", 1.345}};
  std::vector<PaperCount> out;
  auto add = [&](const std::string& name, const json& ffn, const Size& s) {
    Config c = parse_config(json{{"model",
                                  {{"vocab", 32000},
                                   {"d", s.d},
                                   {"layers", s.layers},
                                   {"heads", s.heads},
                                   {"context", 2048},
                                   {"ffn", ffn}}}});
    auto it = published.find(name);
    out.push_back({name, count_parameters(c.model), it == published.end() ? 0.0 : it->second});
  };
  for (const Size& s : sizes) {
    for (const moe::FfnKind* kind : {&moe::monet_vd_kind(), &moe::monet_hd_kind()})
      for (int group : {4, 1})
        add(fmt::format("{} {}, group {}", kind->label, s.name, group),
            json{{"kind", kind->name},
                 {"heads", s.h},
                 {"sqrt_n", 512},
                 {"dim", s.m},
                 {"topk", 8},
                 {"group", group}},
            s);
    // LLaMA's SwiGLU width: 8d/3 rounded up to a multiple of 128 (5504 at d = 2048).
    const int64_t hidden = (8 * s.d / 3 + 127) / 128 * 128;
    add(fmt::format("dense LLaMA {}", s.name),
        json{{"kind", moe::dense_kind().name}, {"activation", "swiglu"}, {"hidden", hidden}}, s);
  }
  // PEER's example (He 2024): d = 2048, 1024² singletons, 2·d·N expert parameters per layer,
  // ≈ 103B over 24 layers.
  TableOptions o;
  o.d = 2048;
  Generator gen(0);
  auto peer = build_layer(o, moe::peer_kind(), 1024, Device::meta(), gen);
  const int64_t experts = expert_parameters(moe::peer_kind(), *peer);
  out.push_back({"PEER 1M experts, d 2048: expert params of one layer", experts, 0.0});
  out.push_back({"PEER 1M experts, d 2048: expert params of 24 layers", 24 * experts, 103.0});
  return out;
}

TableResult run_table(const TableOptions& o, const TableProgress& progress) {
  MONET_CHECK(o.d > 0 && o.batch > 0 && o.context > 0 && o.repeats > 0 && o.warmup >= 0,
              "table: d, batch, context and repeats must be positive (got {}, {}, {}, {})", o.d,
              o.batch, o.context, o.repeats);
  MONET_CHECK(!o.sqrt_n.empty(), "table: no √N values to sweep");
  for (int64_t s : o.sqrt_n) MONET_CHECK(s >= 2, "table: √N {} is too small", s);
  TableResult res;
  res.options = o;
  res.threads = cpu_threads();
  const GemmMode gemm = gemm_mode();
  res.device_name =
      o.device.is_cpu()
          ? fmt::format("{}, {} {} GEMM (OpenBLAS {}), {} thread{}", o.device.str(),
                        gemm_backend_name(gemm.backend), precision_name(gemm.precision),
                        blas_core_name(), res.threads, res.threads == 1 ? "" : "s")
          : o.device.str();
#ifdef MONET_WITH_CUDA
  if (o.device.is_cuda()) res.device_name = o.device.str() + ": " + cuda::device_name();
#endif
  const double budget =
      o.max_memory_gib > 0 ? o.max_memory_gib * (1 << 30) : 0.6 * available_bytes(o.device);

  std::vector<std::pair<const moe::FfnKind*, int64_t>> plan;
  for (const moe::FfnKind* kind : o.kinds) {
    if (!kind->sweep) {  // no N: measured once
      plan.emplace_back(kind, 0);
      continue;
    }
    for (int64_t s : o.sqrt_n) plan.emplace_back(kind, s);
    if (kind->many_experts)
      for (int64_t s : o.many_sqrt_n) plan.emplace_back(kind, s);
  }
  const Clock::time_point start = Clock::now();
  for (size_t i = 0; i < plan.size(); ++i) {
    const auto& [kind, s] = plan[i];
    if (progress)
      progress(static_cast<int>(i), static_cast<int>(plan.size()),
               s == 0 ? kind->name : fmt::format("{} N = {}²", kind->name, s));
    res.rows.push_back(measure(o, *kind, s, budget));
  }
  if (progress) progress(static_cast<int>(plan.size()), static_cast<int>(plan.size()), "done");
  res.slopes = fit_slopes(res.rows);
  res.paper = paper_param_counts();
  res.seconds = seconds_since(start);
  return res;
}

}  // namespace monet
