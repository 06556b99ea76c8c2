#include <gtest/gtest.h>

#include "test_train_util.h"
#include "train/tokenizer.h"
#include "util/fileio.h"

namespace monet {
namespace {

using testing::TempDir;
using testing::ThrowsWith;

TEST(TrainFileio, AtomicWriteRoundTripsAndLeavesNoTmpFile) {
  TempDir dir("fileio");
  const auto path = dir / "out.bin";
  std::string bytes("a\0b\xff\n", 5);
  write_file_atomic(path, bytes);
  EXPECT_EQ(read_file(path), bytes);
  write_file_atomic(path, "replaced");  // over an existing file
  EXPECT_EQ(read_file(path), "replaced");
  write_file_atomic(dir / "empty", "");
  EXPECT_EQ(read_file(dir / "empty"), "");
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    ++files;
    EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << e.path();
  }
  EXPECT_EQ(files, 2);
}

TEST(TrainFileio, ErrorsNameThePath) {
  TempDir dir("fileio_err");
  EXPECT_TRUE(ThrowsWith([&] { read_file(dir / "nope.txt"); }, {"nope.txt", "no such file"}));
  EXPECT_TRUE(ThrowsWith([&] { read_file(dir.path()); }, {"folder"}));
  EXPECT_TRUE(ThrowsWith([&] { write_file_atomic(dir / "missing" / "x.bin", "x"); },
                         {"missing/x.bin.tmp.", "cannot create"}));
}

TEST(TrainTokenizer, ByteRoundTripOnUtf8) {
  ByteTokenizer tok;
  EXPECT_EQ(tok.vocab_size(), 256);
  EXPECT_EQ(tok.name(), "byte");
  const std::string text = "héllo, wörld — 日本語 🙂\n\tend";
  std::vector<int32_t> ids = tok.encode(text);
  EXPECT_EQ(ids.size(), text.size());  // one token per byte
  for (int32_t id : ids) EXPECT_TRUE(id >= 0 && id < 256);
  EXPECT_EQ(ids[1], 0xC3);  // first byte of "é"
  EXPECT_EQ(tok.decode(ids), text);
  EXPECT_TRUE(tok.encode("").empty());
  EXPECT_TRUE(ThrowsWith([&] { tok.decode({65, 256}); }, {"256", "position 1"}));
  EXPECT_TRUE(ThrowsWith([&] { tok.decode({-1}); }, {"-1"}));
}

TEST(TrainTokenizer, FactoryKnowsByte) {
  EXPECT_EQ(make_tokenizer("byte")->vocab_size(), 256);
  EXPECT_TRUE(ThrowsWith([] { make_tokenizer("bpe"); }, {"unknown tokenizer 'bpe'"}));
}

}  // namespace
}  // namespace monet
