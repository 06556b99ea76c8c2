// `monet bench` (eval/bench.h): the CI smoke run of the real binary (`--steps 2` on one bench
// config: it must finish and print its row), the clean one-line errors of --vs-torch without an
// interpreter or without torch, and the Markdown table on hand-made numbers. Nothing here checks
// a timing.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "eval/bench.h"
#include "test_train_util.h"
#include "util/fileio.h"

using monet::testing::TempDir;
namespace fs = std::filesystem;

namespace {

struct BenchRun {
  int status;
  std::string out, err;
};

// Runs build/monet `args` from the source folder (the configs name their corpus relative to it).
BenchRun monet_in_source_dir(const std::string& args, const fs::path& tmp) {
  const fs::path out = tmp / "stdout.txt", err = tmp / "stderr.txt";
  const std::string cmd = "cd '" + std::string(MONET_SOURCE_DIR) + "' && '" +
                          std::string(MONET_BINARY_DIR) + "/monet' " + args + " >" + out.string() +
                          " 2>" + err.string();
  const int rc = std::system(cmd.c_str());
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, monet::read_file(out), monet::read_file(err)};
}

std::string error_line(const std::string& err) {
  const size_t at = err.find("monet: error: ");
  return at == std::string::npos ? "" : err.substr(at);
}

}  // namespace

TEST(CliBench, SmokeTwoSteps) {
  TempDir t("cli_bench_smoke");
  const BenchRun r = monet_in_source_dir(
      "bench --config configs/bench_dense_d128.json --steps 2 --warmup 0 --rounds 1 "
      "--precision fp32,bf16 --set model.layers=1 --out '" +
          (t / "out").string() + "'",
      t.path());
  ASSERT_EQ(r.status, 0) << r.err;
  // --out: the same table, and every number as JSON.
  EXPECT_EQ(monet::read_file(t / "out" / "bench.md"), r.out);
  const auto j = nlohmann::json::parse(monet::read_file(t / "out" / "bench.json"));
  ASSERT_EQ(j["rows"].size(), 2u);
  EXPECT_EQ(j["rows"][1]["precision"], "bf16");
  EXPECT_EQ(j["rows"][0]["cpp"]["step_seconds"].size(), 2u);
  EXPECT_NE(
      r.out.find(fmt::format("{:.0f}", j["rows"][0]["cpp"]["tokens_per_second"].get<double>())),
      std::string::npos);
  const std::string backend = monet::gemm_backend_name(monet::default_gemm_backend());
  for (const char* p : {"fp32", "bf16"})
    EXPECT_NE(r.out.find(fmt::format("| bench_dense_d128 | dense | 128 | {} | {} |", p, backend)),
              std::string::npos)
        << r.out;
  EXPECT_NE(r.out.find("GEMM peaks (1024³"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("openblas fp32 "), std::string::npos) << r.out;
#ifdef MONET_WITH_DNNL
  EXPECT_NE(r.out.find("onednn bf16 "), std::string::npos) << r.out;
#endif
}

TEST(CliBench, BadPrecisionOrGemmIsAUsageError) {
  TempDir t("cli_bench_bad");
  for (const char* args : {"--precision fp16", "--gemm mkl", "--precision fp32,half"}) {
    const BenchRun r = monet_in_source_dir(
        std::string("bench --config configs/bench_dense_d128.json --steps 1 ") + args, t.path());
    EXPECT_EQ(r.status, 2) << args;
    const std::string line = error_line(r.err);
    EXPECT_NE(line.find(args[2] == 'p' ? "--precision" : "--gemm"), std::string::npos) << r.err;
    EXPECT_EQ(line.find('\n'), line.size() - 1) << r.err;
  }
}

TEST(CliBench, VsTorchWithoutInterpreterIsOneLineError) {
  TempDir t("cli_bench_nopython");
  const BenchRun r = monet_in_source_dir(
      "bench --config configs/bench_dense_d128.json --steps 1 --vs-torch --python "
      "/nonexistent/python3",
      t.path());
  EXPECT_EQ(r.status, 1);
  const std::string line = error_line(r.err);
  EXPECT_NE(line.find("/nonexistent/python3"), std::string::npos) << r.err;
  EXPECT_EQ(line.find('\n'), line.size() - 1) << r.err;
}

TEST(CliBench, VsTorchWithoutTorchIsOneLineError) {
  TempDir t("cli_bench_notorch");
  // /bin/false stands for an interpreter that cannot import torch: it exits 1.
  const BenchRun r = monet_in_source_dir(
      "bench --config configs/bench_dense_d128.json --steps 1 --vs-torch --python /bin/false",
      t.path());
  EXPECT_EQ(r.status, 1);
  const std::string line = error_line(r.err);
  EXPECT_NE(line.find("cannot import torch"), std::string::npos) << r.err;
  EXPECT_EQ(line.find('\n'), line.size() - 1) << r.err;
}

TEST(BenchMarkdown, RatioPeakFractionAndLosses) {
  monet::BenchResult r;
  r.options.steps = 3;
  r.options.rounds = 2;
  r.peaks = {{{monet::GemmBackend::OpenBLAS, monet::Precision::F32}, 60},  // not the row's own
             {{monet::GemmBackend::OneDNN, monet::Precision::BF16}, 600.5}};
  r.threads = 2;
  monet::BenchRow w;
  w.config = "bench_x";
  w.kind = "dense";
  w.precision = "bf16";
  w.gemm = "onednn";
  w.d = 128;
  w.params = 1000;
  w.tokens_per_step = 2048;
  w.cpp.tokens_per_second = 3000;
  w.step_flops = 20e9;
  w.gflops = 20;  // a quarter of this row's peak
  w.peak_gflops = 80;
  w.peak_bytes = 3 << 20;
  w.cpp.losses = {5.0, 4.5};
  w.has_torch = true;
  w.torch.tokens_per_second = 1500;  // C++ twice as fast
  w.torch.losses = {5.0, 4.25};
  w.torch.max_rss_bytes = 100 << 20;
  r.rows.push_back(w);
  const std::string md = monet::bench_markdown(r);
  EXPECT_NE(md.find("| bench_x | dense | 128 | bf16 | onednn | 1000 | 2048 | 3000 | 20.00 | 20.0 | "
                    "25% | 3 |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("(1024³, 2 threads) at the start of this run: openblas fp32 60.0, onednn bf16 "
                    "600.5 GFLOP/s."),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| 1500 | 2.00× | 100 | 4.5000 / 4.2500 (max Δ 2.5e-01) |"), std::string::npos)
      << md;
}
