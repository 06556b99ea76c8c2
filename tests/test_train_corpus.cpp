#include <gtest/gtest.h>

#include <map>
#include <numeric>

#include "test_train_util.h"
#include "train/corpus.h"
#include "util/fileio.h"

namespace monet {
namespace {

using testing::TempDir;
using testing::ThrowsWith;
namespace fs = std::filesystem;

const fs::path kToy4 = fs::path(MONET_SOURCE_DIR) / "third_party/corpora/toy4";

std::vector<int32_t> iota_tokens(int64_t n) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}

TEST(TrainCorpus, LoadsBundledToy4) {
  ByteTokenizer tok;
  Corpus c = Corpus::load(kToy4, tok);
  ASSERT_EQ(c.domains().size(), 4u);
  const std::vector<std::string> names = {"cpp", "english", "java", "python"};
  size_t stream = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    const Domain& d = c.domains()[i];
    EXPECT_EQ(d.name, names[i]);
    EXPECT_EQ(d.train.size(), fs::file_size(kToy4 / (d.name + ".train.txt")));
    EXPECT_EQ(d.val.size(), fs::file_size(kToy4 / (d.name + ".val.txt")));
    stream += d.train.size();
  }
  EXPECT_EQ(c.train_stream().size(), stream);
  EXPECT_EQ(c.domain("java").val.size(), 151948u);  // the README's table
  EXPECT_EQ(c.val_tokens(), 150137 + 151195 + 151948 + 151259);
  const auto& cpp = c.domain("cpp").train;
  EXPECT_TRUE(std::equal(cpp.begin(), cpp.end(), c.train_stream().begin()));
  EXPECT_TRUE(ThrowsWith([&] { c.domain("rust"); }, {"no domain 'rust'", "cpp, english"}));
}

TEST(TrainCorpus, LoadsAFolderMadeHere) {
  TempDir dir("corpus_ok");
  write_file_atomic(dir / "zeta.train.txt", "zz train");
  write_file_atomic(dir / "zeta.val.txt", "zv");
  write_file_atomic(dir / "alpha.train.txt", "alpha train\n");
  write_file_atomic(dir / "alpha.val.txt", "av");
  write_file_atomic(dir / "README.md", "ignored");
  fs::create_directory(dir / "LICENSES");
  write_file_atomic(dir / "LICENSES" / "x.train.txt", "ignored too");
  ByteTokenizer tok;
  Corpus c = Corpus::load(dir.path(), tok);
  ASSERT_EQ(c.domains().size(), 2u);
  EXPECT_EQ(c.domains()[0].name, "alpha");
  EXPECT_EQ(c.domains()[1].name, "zeta");
  EXPECT_EQ(tok.decode(c.domains()[0].train), "alpha train\n");
  EXPECT_EQ(tok.decode(c.domains()[1].val), "zv");
  EXPECT_EQ(tok.decode(c.train_stream()), "alpha train\nzz train");
}

TEST(TrainCorpus, ErrorsNameThePath) {
  ByteTokenizer tok;
  TempDir dir("corpus_err");
  EXPECT_TRUE(ThrowsWith([&] { Corpus::load(dir / "absent", tok); }, {"absent", "does not exist"}));
  write_file_atomic(dir / "file.txt", "x");
  EXPECT_TRUE(
      ThrowsWith([&] { Corpus::load(dir / "file.txt", tok); }, {"file.txt", "not a folder"}));
  EXPECT_TRUE(
      ThrowsWith([&] { Corpus::load(dir.path(), tok); }, {dir.path().string(), "no <domain>"}));

  write_file_atomic(dir / "a.train.txt", "abc");
  EXPECT_TRUE(ThrowsWith([&] { Corpus::load(dir.path(), tok); }, {"missing", "a.val.txt"}));
  write_file_atomic(dir / "b.val.txt", "abc");
  write_file_atomic(dir / "a.val.txt", "abc");
  EXPECT_TRUE(ThrowsWith([&] { Corpus::load(dir.path(), tok); }, {"missing", "b.train.txt"}));
  write_file_atomic(dir / "b.train.txt", "");
  EXPECT_TRUE(ThrowsWith([&] { Corpus::load(dir.path(), tok); }, {"b.train.txt", "is empty"}));
  write_file_atomic(dir / "b.train.txt", "ok");
  EXPECT_EQ(Corpus::load(dir.path(), tok).domains().size(), 2u);
}

TEST(TrainBatcher, TargetsAreInputsShiftedByOne) {
  Batcher b(iota_tokens(1000), 7);
  auto [x, y] = b.next(4, 16);
  ASSERT_EQ(x.shape(), (Shape{4, 16}));
  ASSERT_EQ(y.shape(), (Shape{4, 16}));
  ASSERT_EQ(x.dtype(), DType::I32);
  ASSERT_EQ(y.dtype(), DType::I32);
  std::vector<int32_t> xs = x.to_vector<int32_t>(), ys = y.to_vector<int32_t>();
  for (int r = 0; r < 4; ++r) {
    for (int t = 0; t < 16; ++t) {
      EXPECT_EQ(ys[r * 16 + t], xs[r * 16 + t] + 1);  // next token
      if (t > 0) {
        EXPECT_EQ(xs[r * 16 + t], xs[r * 16 + t - 1] + 1);  // one window of the stream
      }
    }
    EXPECT_LE(ys[r * 16 + 15], 999);
  }
}

TEST(TrainBatcher, SameSeedSameBatchesAndResumable) {
  std::vector<int32_t> tokens = iota_tokens(5000);
  Batcher a(tokens, 42), b(tokens, 42), c(tokens, 43);
  for (int i = 0; i < 3; ++i) {
    auto [xa, ya] = a.next(8, 32);
    auto [xb, yb] = b.next(8, 32);
    auto [xc, yc] = c.next(8, 32);
    EXPECT_EQ(xa.to_vector<int32_t>(), xb.to_vector<int32_t>());
    EXPECT_EQ(ya.to_vector<int32_t>(), yb.to_vector<int32_t>());
    EXPECT_NE(xa.to_vector<int32_t>(), xc.to_vector<int32_t>());
  }
  const BatcherState saved = a.state();
  EXPECT_EQ(saved.batches, 3);
  auto [x4, y4] = a.next(8, 32);

  Batcher resumed(tokens, 999);
  resumed.set_state(saved);
  EXPECT_EQ(resumed.state(), saved);
  auto [r4, s4] = resumed.next(8, 32);
  EXPECT_EQ(r4.to_vector<int32_t>(), x4.to_vector<int32_t>());
  EXPECT_EQ(s4.to_vector<int32_t>(), y4.to_vector<int32_t>());
  EXPECT_EQ(resumed.state().batches, 4);
  EXPECT_EQ(resumed.state(), a.state());
}

TEST(TrainBatcher, WindowMustFit) {
  Batcher b(iota_tokens(10), 1);
  EXPECT_TRUE(ThrowsWith([&] { b.next(2, 10); }, {"T + 1 = 11", "10 tokens"}));
  EXPECT_TRUE(ThrowsWith([&] { b.next(0, 4); }, {"positive"}));
  auto [x, y] = b.next(3, 9);  // exactly fits: every row is the whole stream
  EXPECT_EQ(x.to_vector<int32_t>()[18], 0);
  EXPECT_EQ(y.to_vector<int32_t>()[26], 9);
  EXPECT_TRUE(ThrowsWith([&] { b.set_state({}); }, {"all-zero"}));
}

// Scored target positions (token value = position) of all batches: each must appear once.
std::map<int32_t, int> scored_positions(const std::vector<EvalBatch>& batches, int64_t T) {
  std::map<int32_t, int> seen;
  for (const EvalBatch& b : batches) {
    std::vector<int32_t> xs = b.inputs.to_vector<int32_t>(), ys = b.targets.to_vector<int32_t>();
    int64_t scored = 0;
    for (size_t i = 0; i < ys.size(); ++i) {
      if (i % T > 0) {
        EXPECT_EQ(xs[i], xs[i - 1] + 1);  // contiguous text
      }
      if (ys[i] == kIgnoreTarget) continue;
      EXPECT_EQ(ys[i], xs[i] + 1);
      ++seen[ys[i]];
      ++scored;
    }
    EXPECT_EQ(scored, b.scored);
  }
  return seen;
}

TEST(TrainEvalWindows, CoverEveryTokenExactlyOnce) {
  for (int64_t n : {41, 42, 33, 9}) {  // (n - 1) % 8 = 0, 1, 0, 0 ; 41 = 5 windows exactly
    const int64_t T = 8;
    std::vector<EvalBatch> batches = eval_batches(iota_tokens(n), 2, T);
    std::map<int32_t, int> seen = scored_positions(batches, T);
    ASSERT_EQ(static_cast<int64_t>(seen.size()), n - 1) << "n = " << n;
    EXPECT_EQ(seen.begin()->first, 1);
    EXPECT_EQ(seen.rbegin()->first, n - 1);
    for (auto [pos, count] : seen) EXPECT_EQ(count, 1) << "position " << pos;
    const int64_t windows = (n - 1 + T - 1) / T;
    EXPECT_EQ(static_cast<int64_t>(batches.size()), (windows + 1) / 2);
    EXPECT_EQ(batches.back().inputs.size(0), windows % 2 == 0 ? 2 : 1);
  }
}

TEST(TrainEvalWindows, CapSpreadsWindowsDeterministically) {
  const int64_t T = 10;
  std::vector<int32_t> tokens = iota_tokens(1001);  // 100 windows
  std::vector<EvalBatch> a = eval_batches(tokens, 4, T, 10), b = eval_batches(tokens, 4, T, 10);
  ASSERT_EQ(a.size(), 3u);  // 4 + 4 + 2 windows
  std::vector<int32_t> starts;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].inputs.to_vector<int32_t>(), b[i].inputs.to_vector<int32_t>());
    std::vector<int32_t> xs = a[i].inputs.to_vector<int32_t>();
    for (int64_t r = 0; r < a[i].inputs.size(0); ++r) starts.push_back(xs[r * T]);
    EXPECT_EQ(a[i].scored, a[i].inputs.numel());
  }
  EXPECT_EQ(starts, (std::vector<int32_t>{0, 100, 200, 300, 400, 500, 600, 700, 800, 900}));
  EXPECT_EQ(eval_batches(tokens, 4, T, 1000).size(), 25u);  // a cap above the count: all windows
  EXPECT_TRUE(
      ThrowsWith([&] { eval_batches(iota_tokens(10), 1, 10); }, {"10 tokens", "T + 1 = 11"}));
}

TEST(TrainEvalWindows, OnToy4Val) {
  ByteTokenizer tok;
  std::vector<int32_t> val = tok.encode(read_file(kToy4 / "python.val.txt"));
  std::vector<EvalBatch> batches = eval_batches(val, 8, 128, 16);
  ASSERT_EQ(batches.size(), 2u);
  EXPECT_EQ(batches[0].scored + batches[1].scored, 16 * 128);
  EXPECT_EQ(batches[0].inputs.to_vector<int32_t>()[0], val[0]);
}

}  // namespace
}  // namespace monet
