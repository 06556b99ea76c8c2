// `monet bench` (eval/bench.h): the CI smoke run of the real binary (`--steps 2` on one bench
// config: it must finish and print its row), the clean one-line errors of --vs-torch without an
// interpreter or without torch, and the Markdown table on hand-made numbers. Nothing here checks
// a timing.
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
      "bench --config configs/bench_dense_d128.json --steps 2 --warmup 0 --rounds 1", t.path());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("| bench_dense_d128 | dense | 128 |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("sgemm peak"), std::string::npos) << r.out;
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
  r.sgemm_gflops = 60;  // the run's median: not what the row is compared with
  r.blas_threads = 2;
  monet::BenchRow w;
  w.config = "bench_x";
  w.kind = "dense";
  w.d = 128;
  w.params = 1000;
  w.tokens_per_step = 2048;
  w.cpp.tokens_per_second = 3000;
  w.step_flops = 20e9;
  w.gflops = 20;  // a quarter of this row's peak
  w.sgemm_gflops = 80;
  w.peak_bytes = 3 << 20;
  w.cpp.losses = {5.0, 4.5};
  w.has_torch = true;
  w.torch.tokens_per_second = 1500;  // C++ twice as fast
  w.torch.losses = {5.0, 4.25};
  w.torch.max_rss_bytes = 100 << 20;
  r.rows.push_back(w);
  const std::string md = monet::bench_markdown(r);
  EXPECT_NE(md.find("| bench_x | dense | 128 | 1000 | 2048 | 3000 | 20.00 | 20.0 | 25% | 3 |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| 1500 | 2.00× | 100 | 4.5000 / 4.2500 (max Δ 2.5e-01) |"), std::string::npos)
      << md;
}
