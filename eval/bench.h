// `monet bench`: the training step of `monet train`, measured.
//
//   monet bench --config FILE [--config FILE2 ...] [--precision fp32,bf16] [--gemm B]
//               [--steps N] [--warmup W] [--rounds R] [--vs-torch] [--set key=value ...]
//
// For each config and precision (one row each; the config's run.precision when none is given): the
// model, optimizer and data of `monet train` (train/trainer.h's train_step: batch → forward → LM
// loss + aux losses → backward → clip → optimizer step, at the constant learning rate optim.lr), W
// untimed steps then N timed ones, R rounds, each round from the same initial weights and the same
// batches. Reported per config:
//   - tokens/s: B·T over the median step time of every timed step (batch drawing included);
//   - FLOPs of one step as the ops count them (core/flops.h FlopCounter over the first step),
//     achieved GFLOP/s = FLOPs / median step time, and its fraction of the GEMM peak of the mode
//     the row ran in (backend and precision, core/gemm_mode.h), measured before each of its C++
//     rounds (a square 1024 product through cpu::gemm for ~0.5 s, on every thread). The peak of
//     every mode the build has (OpenBLAS fp32, oneDNN fp32 and bf16) is measured at the start;
//   - peak memory: the tracking allocator's high-water mark over the first round (core/memory.h:
//     weights, optimizer state, activations, gradients and temporaries; tensors only).
// --vs-torch alternates C++ rounds with rounds of the PyTorch twin (eval/reference/
// torch_bench.py: the same config, architecture, batches and, from a file this command writes,
// the same initial weights), run as `OPENBLAS_NUM_THREADS=2 /usr/bin/python3 torch_bench.py
// --threads 1` (PyTorch's best setting on the 2-core machine this was written on), and adds its
// tokens/s, the ratio C++ / PyTorch, its max RSS and the LM loss of the last step on both sides.
// The twin runs in the row's precision: bf16 rows under torch.autocast("cpu", torch.bfloat16).
// A missing interpreter or a Python without torch is an error, before anything is measured.
// Timings are wall-clock on a shared machine: rounds alternate so that both sides see the same
// background load, and medians are reported. No test times anything; CI runs `--steps 2`.
#pragma once
#include <cstdint>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/gemm_mode.h"

namespace monet {

struct BenchOptions {
  std::vector<std::string> configs;  // one row each
  std::vector<std::string> sets;     // `--set` overrides applied to every config
  // One row per config and precision ("fp32", "bf16"); empty: each config's run.precision.
  std::vector<std::string> precisions;
  std::string gemm;  // run.gemm of every row ("auto", "openblas", "onednn"); empty: the config's
  int64_t steps = 10, warmup = 2;
  int rounds = 2;  // per side; with --vs-torch, C++ and PyTorch rounds alternate
  bool vs_torch = false;
  std::string python = "/usr/bin/python3";
  std::string torch_script = "eval/reference/torch_bench.py";  // relative to the current folder
  int torch_threads = 1;                                       // torch.set_num_threads
  int torch_blas_threads = 2;  // OPENBLAS_NUM_THREADS of the Python process
  double peak_seconds = 0.5;   // how long the sgemm peak is measured
  void validate() const;       // monet::Error naming the bad option
};

struct BenchSide {
  std::vector<double> step_seconds;  // every timed step of every round
  std::vector<double> losses;        // LM loss of each step of the first round, warm-up included
  double tokens_per_second = 0;      // tokens per step / median step time
  int64_t max_rss_bytes = 0;         // PyTorch: getrusage of its process (0 for C++)
};

struct BenchRow {
  std::string config, kind, precision, gemm;  // gemm: the backend that ran, never "auto"
  int64_t d = 0, layers = 0, params = 0, tokens_per_step = 0;
  BenchSide cpp, torch;
  bool has_torch = false;
  std::string torch_version, torch_blas_threads;
  int torch_threads = 0;
  double step_flops = 0;  // one training step, forward + backward, as the ops count them
  std::map<std::string, double> step_flops_by_category;
  double gflops = 0;       // step_flops / median step time, in GFLOP/s
  int64_t peak_bytes = 0;  // tracking allocator, first round
  // The GEMM peak of the row's mode measured just before each of its C++ rounds, and their
  // median: the machine's speed drifts during a long run, so each row is compared with its own.
  std::vector<double> peak_samples;
  double peak_gflops = 0;
};

struct GemmPeak {
  GemmMode mode;
  double gflops = 0;
};

struct BenchResult {
  BenchOptions options;
  std::vector<BenchRow> rows;
  std::vector<GemmPeak> peaks;  // every mode of this build, measured at the start of the run
  int threads = 0;
};

// GFLOP/s of C = A·B, square n×n float32 through cpu::gemm in `mode`, for about `seconds`.
double measure_gemm_gflops(GemmMode mode, int64_t n = 1024, double seconds = 0.5);
// The modes whose peaks a bench reports: OpenBLAS fp32 and, where built, oneDNN fp32 and bf16
// (OpenBLAS's bf16 is an emulation, not a peak of its own).
std::vector<GemmMode> peak_modes();

// Progress lines go to `log`.
BenchResult run_bench(const BenchOptions& o, std::FILE* log = stderr);
std::string bench_markdown(const BenchResult& r);
// Every number of the run as JSON (eval/bench_json.cpp): `monet bench --out DIR` writes it as
// bench.json beside bench.md.
nlohmann::json bench_json(const BenchResult& r);

// The command: runs, prints the Markdown table on stdout; returns the exit status.

}  // namespace monet
