// `monet bench` (eval/bench.h): the training step timed, FLOP-counted and memory-tracked, and
// optionally alternated with the PyTorch twin (eval/reference/torch_bench.py).
#include "eval/bench.h"

#ifdef MONET_OPENMP
#include <omp.h>
#endif
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/cpu/blas.h"
#include "core/error.h"
#include "core/flops.h"
#include "core/machine.h"
#include "core/memory.h"
#include "train/config.h"
#include "train/corpus.h"
#include "train/model.h"
#include "train/safetensors.h"
#include "train/tokenizer.h"
#include "train/trainer.h"
#include "util/fileio.h"
#include "util/timing.h"

namespace monet {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

void BenchOptions::validate() const {
  MONET_CHECK(!configs.empty(), "bench: give --config FILE.json (repeatable)");
  MONET_CHECK(steps > 0, "bench: --steps must be positive, got {}", steps);
  MONET_CHECK(warmup >= 0, "bench: --warmup must be >= 0, got {}", warmup);
  MONET_CHECK(rounds > 0, "bench: --rounds must be positive, got {}", rounds);
  for (const std::string& p : precisions) (void)parse_precision(p, "bench --precision");
  if (!gemm.empty() && gemm != "auto") (void)parse_gemm_backend(gemm, "bench --gemm");
  MONET_CHECK(torch_threads > 0 && torch_blas_threads > 0,
              "bench: torch threads {} and BLAS threads {} must be positive", torch_threads,
              torch_blas_threads);
}

namespace {

// A shell word: 'text' with every ' written as '\''.
std::string quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// The process's output and exit status; stderr goes to `err_file`.
std::pair<int, std::string> run_capture(const std::string& cmd, const fs::path& err_file) {
  const std::string full = cmd + " 2>" + quoted(err_file.string());
  std::FILE* p = popen(full.c_str(), "r");
  MONET_CHECK(p != nullptr, "bench: cannot start '{}'", cmd);
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int rc = pclose(p);
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, out};
}

// The last lines of a file, for error messages (one line: newlines become " | ").
std::string tail_of(const fs::path& file, size_t chars = 600) {
  std::string s;
  try {
    s = read_file(file);
  } catch (const std::exception&) {
    return "";
  }
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  if (s.size() > chars) s = "..." + s.substr(s.size() - chars);
  std::replace(s.begin(), s.end(), '\n', '|');
  return s;
}

// A temporary folder removed with its contents at the end of the scope.
struct TempFolder {
  fs::path path;
  TempFolder() {
    path = fs::temp_directory_path() / fmt::format("monet_bench_{}", static_cast<long>(getpid()));
    fs::create_directories(path);
  }
  ~TempFolder() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::string torch_env(const BenchOptions& o) {
  return fmt::format("OPENBLAS_NUM_THREADS={} OMP_NUM_THREADS={} ", o.torch_blas_threads,
                     o.torch_threads);
}

// Errors before anything is measured when the interpreter or torch is missing.
void check_torch(const BenchOptions& o, const fs::path& tmp) {
  MONET_CHECK(fs::exists(o.python),
              "bench --vs-torch: the Python interpreter '{}' does not exist (install Debian's "
              "python3 and python3-torch, or give --python)",
              o.python);
  MONET_CHECK(fs::exists(o.torch_script),
              "bench --vs-torch: the PyTorch twin '{}' does not exist (run monet from the "
              "repository root, or give --torch-script)",
              o.torch_script);
  const auto [rc, out] =
      run_capture(quoted(o.python) + " -c " + quoted("import torch; print(torch.__version__)"),
                  tmp / "check.txt");
  MONET_CHECK(rc == 0,
              "bench --vs-torch: '{}' cannot import torch (apt-get install python3-torch): {}",
              o.python, tail_of(tmp / "check.txt", 200));
}

// One C++ round: a fresh model, optimizer and batcher (the same every round), W + N steps.
// Round 0 also counts the FLOPs of its first step, tracks the allocator's peak, and writes the
// initial weights to `init_file` when one is given.
void cpp_round(const Config& cfg, const Corpus& corpus, const BenchOptions& o, bool first,
               const fs::path& init_file, BenchRow& row) {
  const Device device = usable_device(cfg.run.device);
  const GemmScope gemm(gemm_mode_of(cfg.run));
  Generator init(cfg.run.seed);
  Generator rng(cfg.run.seed + 2);  // as the trainer: routing noise
  auto model = build_model(cfg.model, init, DType::F32, device, &rng);
  model->train();
  if (first && !init_file.empty()) save_safetensors(init_file, model_state(*model));
  auto optimizer = make_optimizer(cfg.optim, model->named_parameters());
  optimizer->set_lr(cfg.optim.lr);
  Batcher batcher(corpus.train_stream(), cfg.run.seed + 1);
  const int64_t B = cfg.run.batch, T = cfg.model.context;
  row.params = model->num_parameters();
  row.tokens_per_step = B * T;
  if (first) memory::reset_peak(device.type);
  for (int64_t step = 0; step < o.warmup + o.steps; ++step) {
    synchronize(device);
    const auto t0 = Clock::now();
    StepResult s;
    if (first && step == 0) {
      FlopCounter counter;
      auto [x, y] = batcher.next(B, T, device);
      s = train_step(*model, *optimizer, x, y, cfg.optim.grad_clip, step, "(monet bench)");
      row.step_flops = static_cast<double>(counter.total());
      for (const auto& [k, v] : counter.by_category())
        row.step_flops_by_category[k] = static_cast<double>(v);
    } else {
      auto [x, y] = batcher.next(B, T, device);
      s = train_step(*model, *optimizer, x, y, cfg.optim.grad_clip, step, "(monet bench)");
    }
    synchronize(device);
    const double dt = seconds_since(t0);
    if (first) row.cpp.losses.push_back(s.lm);
    if (step >= o.warmup) row.cpp.step_seconds.push_back(dt);
  }
  if (first) row.peak_bytes = memory::stats(device.type).peak;
}

// One PyTorch round, in a subprocess.
void torch_round(const fs::path& config_file, const fs::path& init_file, const BenchOptions& o,
                 bool first, const fs::path& tmp, BenchRow& row) {
  const std::string cmd =
      torch_env(o) + quoted(o.python) + " " + quoted(o.torch_script) + " --config " +
      quoted(config_file.string()) +
      fmt::format(" --steps {} --warmup {} --threads {}", o.steps, o.warmup, o.torch_threads) +
      " --init " + quoted(init_file.string());
  const fs::path err = tmp / "torch_stderr.txt";
  const auto [rc, out] = run_capture(cmd, err);
  MONET_CHECK(rc == 0, "bench --vs-torch: the PyTorch twin failed on {} (exit {}): {}", row.config,
              rc, tail_of(err));
  const size_t at = out.rfind("\n{");
  const std::string line = out.substr(at == std::string::npos ? 0 : at + 1);
  json j = json::parse(line, nullptr, false);
  MONET_CHECK(!j.is_discarded() && j.contains("step_seconds"),
              "bench --vs-torch: the PyTorch twin printed no result for {}: '{}'", row.config,
              line.substr(0, 200));
  for (double s : j["step_seconds"]) row.torch.step_seconds.push_back(s);
  if (first) row.torch.losses = j["losses"].get<std::vector<double>>();
  row.torch.max_rss_bytes = std::max(row.torch.max_rss_bytes, j.value("max_rss_bytes", int64_t{0}));
  row.torch_version = j.value("torch", "");
  row.torch_threads = j.value("threads", 0);
  row.torch_blas_threads = j.value("openblas_threads", "");
  row.has_torch = true;
}

// "OpenBLAS fp32 180.2, oneDNN fp32 301.5, oneDNN bf16 610.0 GFLOP/s"
std::string peaks_text(const std::vector<GemmPeak>& peaks) {
  std::string s;
  for (const GemmPeak& p : peaks)
    s += fmt::format("{}{} {} {:.1f}", s.empty() ? "" : ", ", gemm_backend_name(p.mode.backend),
                     precision_name(p.mode.precision), p.gflops);
  return s + " GFLOP/s";
}

// The threads a parallel region gets (OpenMP's, which OpenBLAS and oneDNN share).
int omp_threads() {
#ifdef MONET_OPENMP
  return omp_get_max_threads();
#else
  return cpu_threads();
#endif
}

std::string fmt_mib(double bytes) {
  return fmt::format("{:.0f}", bytes / (1024.0 * 1024.0));
}

}  // namespace

double measure_gemm_gflops(GemmMode mode, int64_t n, double seconds) {
  std::vector<float> a(n * n), b(n * n), c(n * n);
  for (int64_t i = 0; i < n * n; ++i) {
    a[i] = static_cast<float>((i * 7 % 13) - 6) / 8.0f;
    b[i] = static_cast<float>((i * 5 % 11) - 5) / 8.0f;
  }
  auto gemm = [&] {
    cpu::gemm(mode, CblasNoTrans, CblasNoTrans, n, n, n, a.data(), n, b.data(), n, 0.0f, c.data(),
              n);
  };
  gemm();  // warm-up: thread start, page faults, oneDNN's primitive
  int64_t calls = 0;
  const auto t0 = Clock::now();
  double dt = 0;
  do {
    gemm();
    ++calls;
    dt = seconds_since(t0);
  } while (dt < seconds);
  return 2.0 * static_cast<double>(n * n * n) * static_cast<double>(calls) / dt / 1e9;
}

std::vector<GemmMode> peak_modes() {
  std::vector<GemmMode> modes = {{GemmBackend::OpenBLAS, Precision::F32}};
  for (GemmBackend b : built_gemm_backends())
    if (b != GemmBackend::OpenBLAS) {
      modes.push_back({b, Precision::F32});
      modes.push_back({b, Precision::BF16});
    }
  return modes;
}

BenchResult run_bench(const BenchOptions& o, std::FILE* log) {
  o.validate();
  BenchResult res;
  res.options = o;
  TempFolder tmp;
  if (o.vs_torch) check_torch(o, tmp.path);
  res.threads = omp_threads();
  for (const GemmMode& m : peak_modes()) {
    res.peaks.push_back({m, measure_gemm_gflops(m, 1024, o.peak_seconds)});
    if (log)
      fmt::print(log, "bench: GEMM peak, {} {}: {:.1f} GFLOP/s (1024³, {} threads)\n",
                 gemm_backend_name(m.backend), precision_name(m.precision), res.peaks.back().gflops,
                 res.threads);
  }
  ByteTokenizer tokenizer;
  int file_index = 0;
  for (const std::string& config_path : o.configs) {
    const Config base = load_config(config_path, o.sets);
    const Corpus corpus = Corpus::load(base.run.data, tokenizer);
    std::vector<std::string> precisions = o.precisions;
    if (precisions.empty()) precisions.emplace_back(precision_name(base.run.precision));
    for (const std::string& precision : precisions) {
      // --precision and --gemm are run.precision and run.gemm: set, then validated with the rest.
      std::vector<std::string> sets = o.sets;
      sets.push_back("run.precision=" + precision);
      if (!o.gemm.empty()) sets.push_back("run.gemm=" + o.gemm);
      const Config cfg = load_config(config_path, sets);
      const GemmMode mode = gemm_mode_of(cfg.run);
      BenchRow row;
      row.config = fs::path(config_path).stem().string();
      row.kind = cfg.model.ffn.kind->name;
      row.precision = precision;
      row.gemm = gemm_backend_name(mode.backend);
      row.d = cfg.model.d;
      row.layers = cfg.model.layers;
      const std::string name = fmt::format("{} ({}, {})", row.config, row.precision, row.gemm);
      const fs::path config_file = tmp.path / fmt::format("config_{}.json", file_index);
      const fs::path init_file = tmp.path / fmt::format("init_{}.safetensors", file_index++);
      if (o.vs_torch) save_config(config_file, cfg);  // every key resolved: no defaults to guess
      for (int r = 0; r < o.rounds; ++r) {
        row.peak_samples.push_back(measure_gemm_gflops(mode, 1024, o.peak_seconds));
        if (log)
          fmt::print(log, "bench: {} round {}/{}: GEMM peak {:.1f} GFLOP/s, C++\n", name, r + 1,
                     o.rounds, row.peak_samples.back());
        cpp_round(cfg, corpus, o, r == 0, o.vs_torch ? init_file : fs::path(), row);
        if (o.vs_torch) {
          if (log) fmt::print(log, "bench: {} round {}/{}: PyTorch\n", name, r + 1, o.rounds);
          torch_round(config_file, init_file, o, r == 0, tmp.path, row);
        }
      }
      const double tokens = static_cast<double>(row.tokens_per_step);
      const double cpp_median = median(row.cpp.step_seconds);
      row.cpp.tokens_per_second = tokens / cpp_median;
      row.gflops = row.step_flops / cpp_median / 1e9;
      row.peak_gflops = median(row.peak_samples);
      if (row.has_torch) row.torch.tokens_per_second = tokens / median(row.torch.step_seconds);
      if (log)
        fmt::print(log, "bench: {}: C++ {:.0f} tokens/s{}\n", name, row.cpp.tokens_per_second,
                   row.has_torch
                       ? fmt::format(", PyTorch {:.0f} tokens/s", row.torch.tokens_per_second)
                       : std::string());
      res.rows.push_back(std::move(row));
    }
  }
  return res;
}

std::string bench_markdown(const BenchResult& r) {
  const BenchOptions& o = r.options;
  const bool torch =
      std::any_of(r.rows.begin(), r.rows.end(), [](const BenchRow& w) { return w.has_torch; });
  std::string s = fmt::format(
      "## monet bench: training step (batch, forward, backward, clip, optimizer step), median of "
      "{} timed steps × {} round{} after {} warm-up\n\n"
      "GEMM peaks (1024³, {} thread{}) at the start of this run: {}. Each row's fraction is of the "
      "peak of its own backend and precision, the median of measurements taken before each of its "
      "C++ rounds.",
      o.steps, o.rounds, o.rounds > 1 ? "s" : "", o.warmup, r.threads, r.threads == 1 ? "" : "s",
      peaks_text(r.peaks));
  if (torch) {
    const BenchRow& w =
        *std::find_if(r.rows.begin(), r.rows.end(), [](const BenchRow& x) { return x.has_torch; });
    s += fmt::format(
        " PyTorch {} (eval/reference/torch_bench.py): torch.set_num_threads({}), "
        "OPENBLAS_NUM_THREADS={}; C++ and PyTorch rounds alternate, from the same initial weights "
        "on the same batches.",
        w.torch_version, w.torch_threads, w.torch_blas_threads);
  }
  s += "\n\n| config | ffn | d | precision | gemm | params | tokens/step | C++ tokens/s | "
       "GFLOP/step | GFLOP/s | of GEMM peak | peak memory (MiB) |";
  if (torch)
    s += " PyTorch tokens/s | C++ / PyTorch | PyTorch max RSS (MiB) | LM loss, last step: C++ / "
         "PyTorch |";
  s += "\n|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|";
  if (torch) s += "---:|---:|---:|---:|";
  s += "\n";
  for (const BenchRow& w : r.rows) {
    s += fmt::format(
        "| {} | {} | {} | {} | {} | {} | {} | {:.0f} | {:.2f} | {:.1f} | {:.0f}% | {} |", w.config,
        w.kind, w.d, w.precision, w.gemm, w.params, w.tokens_per_step, w.cpp.tokens_per_second,
        w.step_flops / 1e9, w.gflops, w.peak_gflops > 0 ? 100.0 * w.gflops / w.peak_gflops : 0.0,
        fmt_mib(static_cast<double>(w.peak_bytes)));
    if (torch) {
      if (w.has_torch) {
        std::string loss = "-";
        const size_t n = std::min(w.cpp.losses.size(), w.torch.losses.size());
        if (n > 0) {
          double worst = 0;
          for (size_t i = 0; i < n; ++i)
            worst = std::max(worst, std::abs(w.cpp.losses[i] - w.torch.losses[i]));
          loss = fmt::format("{:.4f} / {:.4f} (max Δ {:.1e})", w.cpp.losses[n - 1],
                             w.torch.losses[n - 1], worst);
        }
        s += fmt::format(" {:.0f} | {:.2f}× | {} | {} |", w.torch.tokens_per_second,
                         w.cpp.tokens_per_second / w.torch.tokens_per_second,
                         fmt_mib(static_cast<double>(w.torch.max_rss_bytes)), loss);
      } else {
        s += " - | - | - | - |";
      }
    }
    s += "\n";
  }
  s += "\nGFLOP/step: the ops' own count (core/flops.h) of one forward + backward; peak memory: "
       "the tracking allocator's high-water mark (tensors only: weights, optimizer state, "
       "activations, gradients)";
  if (torch)
    s += "; PyTorch max RSS: the whole Python process (interpreter and libtorch included); LM "
         "loss: the first round's last step on each side, and the largest difference over its "
         "steps (same initial weights, same batches: they differ by float32 rounding, by bf16 "
         "rounding in bf16 rows (PyTorch under torch.autocast), and by routing choices it flips)";
  s += ".\n";
  return s;
}

}  // namespace monet
