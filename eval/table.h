// `monet table`: the complexity comparison of MONET Table 1 (docs/math/complexity.md §5),
// measured. One feed-forward layer of each kind (dense MLP, SMoE top-k, PEER, MONET-HD, MONET-VD)
// at a fixed width d, for a sweep of expert counts N, on one batch of B·T tokens:
//   - parameters, exact, split into expert weights and retrieval weights (router, keys, query);
//   - forward and forward+backward time per token (median of repeats after warm-up);
//   - FLOPs per token as the ops count them (core/flops.h), split by the layers' FlopScopes into
//     retrieval, PEER's query network and expert computation (nn/ffn.h);
//   - memory of the step from the tracking allocator (core/memory.h): weights, inputs, the
//     activations kept for backward, gradients, transient buffers and the peak, which they sum to.
// A configuration that would not fit is first built on the meta device (shapes only) and reported
// with its predicted size instead of being run. Log-log slopes against N are fitted per kind and
// printed beside the paper's exponents; the paper's full models are counted on the meta device.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "monet/registry.h"

namespace monet {

struct TableOptions {
  int64_t d = 256;
  std::vector<int64_t> sqrt_n = {16, 32, 64, 128, 256, 512};  // N = 2^8 … 2^18
  // Further √N for the kinds built for very many experts (the rows' many_experts: PEER goes on
  // to N = 2^20).
  std::vector<int64_t> many_sqrt_n = {1024};
  std::vector<const moe::FfnKind*> kinds = moe::ffn_kinds();  // every registry row
  int64_t batch = 16, context = 128;                          // B·T tokens per step
  int warmup = 1, repeats = 5;
  Device device = Device::cpu();
  double max_memory_gib = 0;  // 0: 60% of the machine's available memory (of the GPU's, on CUDA)
  uint64_t seed = 0;
  // Per-kind layer settings, merged over the defaults of layer_settings(): "smoe.dim=32".
  std::vector<std::string> sets;
  // The small sweep for CI (`--quick`): √N 16…64, 256 tokens, 2 repeats.
  static TableOptions quick();
};

// The model.ffn object of one kind at expert count N = sqrt_n² (config schema of train/config.h),
// with the options' overrides applied: what the table builds. Defaults at width d:
//   dense     relu² MLP, hidden 4d (no experts: one row, drawn flat across the sweep)
//   smoe      N experts of width m = 64, GShard top-2 gating, dropless
//   peer      N singletons, h = 8 heads, top-16, d_q = 128
//   monet_*   H = 4 heads, √N sub-experts per router, m = 16, k = 8, a router in the layer
nlohmann::json layer_settings(const TableOptions& o, const moe::FfnKind& kind, int64_t sqrt_n);

struct TableRow {
  const moe::FfnKind* kind = nullptr;
  int64_t sqrt_n = 0, n = 0;  // 0 for dense (no experts)
  bool measured = false;
  std::string note;  // why a row was not measured ("needs ≥ 12.3 GiB ...")
  int64_t params = 0, expert_params = 0, param_bytes = 0;
  double predicted_bytes = 0;                        // weights + gradients: the floor a step needs
  double fwd_us = 0, step_us = 0;                    // per token, median
  std::map<std::string, double> fwd_flops;           // per token, by category (forward pass)
  double fwd_flops_total = 0, step_flops_total = 0;  // per token, forward / forward+backward
  // Bytes. weights: the parameters; input: everything else live before the step (x, the upstream
  // gradient, buffers); saved: what the forward left alive for backward (the graph and output);
  // grads: what backward leaves (parameter and input gradients); transient: the rest of the peak
  // (temporaries of forward and backward). weights + input + saved + grads + transient = peak.
  int64_t mem_weights = 0, mem_input = 0, mem_saved = 0, mem_grads = 0, mem_transient = 0,
          mem_peak = 0;
  double flops(const std::string& category) const;  // 0 when the category is absent
};

struct TableSlope {
  const moe::FfnKind* kind = nullptr;
  std::string quantity;  // "params", "expert params", "retrieval FLOPs", ...
  double measured = 0;
  double r2 = 1;      // of the log-log fit: near 1 when the points lie on a line
  double paper = -1;  // the paper's exponent; < 0 when the paper states none
  int points = 0;
};

struct PaperCount {
  std::string model;
  int64_t params = 0;
  double paper = 0;  // the published figure (billions); 0 when the paper gives none
};

struct TableResult {
  TableOptions options;
  std::vector<TableRow> rows;
  std::vector<TableSlope> slopes;
  std::vector<PaperCount> paper;
  int threads = 1;
  std::string device_name;
  double seconds = 0;
};

// Least-squares line of log y against log x (points with x, y > 0): its slope and R². Needs two
// distinct x.
struct LogLogFit {
  double slope = 0, r2 = 1;
};
LogLogFit loglog_fit(const std::vector<double>& x, const std::vector<double>& y);
double loglog_slope(const std::vector<double>& x, const std::vector<double>& y);

// The slopes of clock timings that say nothing (a negative slope: time falling as N grows, or a
// fit with R² < 0.8): timings at this size are mostly noise. One sentence each, for the table
// and for stderr.
std::vector<std::string> slope_warnings(const TableResult& r);

// progress(done, total, what) is called before each configuration.
using TableProgress = std::function<void(int, int, const std::string&)>;
TableResult run_table(const TableOptions& o, const TableProgress& progress = {});

std::vector<TableSlope> fit_slopes(const std::vector<TableRow>& rows);
// The paper models (MONET Table 6/8; the dense LLaMA counterparts; PEER's 1M-expert example)
// built on the meta device.
std::vector<PaperCount> paper_param_counts();

std::string table_markdown(const TableResult& r);
// table.md, table.csv, table.json and the log-log plots (time, FLOPs, params, memory vs N).
void write_table_outputs(const TableResult& r, const std::filesystem::path& dir);

}  // namespace monet
