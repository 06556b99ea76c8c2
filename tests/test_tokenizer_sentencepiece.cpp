// SentencePieceTokenizer (train/sentencepiece_tokenizer.h) on a model trained here, in-process,
// with libsentencepiece's own trainer on 200 KB of the bundled English corpus (LLaMA's settings
// that matter for a round trip: byte fallback, no whitespace folding, identity normalisation;
// unk 0, bos 1, eos 2): lossless on the held-out text, fewer tokens than bytes, the ids in range;
// and the one-line errors for a missing file, a file that is not a model and an id out of range.
#include <gtest/gtest.h>

#ifndef MONET_WITH_SENTENCEPIECE
#include "train/sentencepiece_tokenizer.h"

// A build without libsentencepiece-dev: the tokenizer refuses the file and says why.
TEST(SentencePiece, ABuildWithoutItRefusesTheModelWithTheReason) {
  try {
    monet::SentencePieceTokenizer tok("tokenizer.model");
    FAIL() << "a build without SentencePiece accepted a tokenizer.model";
  } catch (const monet::Error& e) {
    EXPECT_NE(std::string(e.what()).find("libsentencepiece-dev"), std::string::npos) << e.what();
  }
}
#else
#include <sentencepiece_trainer.h>

#include <string>

#include "test_train_util.h"
#include "train/sentencepiece_tokenizer.h"
#include "util/fileio.h"

using monet::testing::TempDir;
using monet::testing::ThrowsWith;
namespace fs = std::filesystem;

namespace {

const std::string kCorpus = std::string(MONET_SOURCE_DIR) + "/third_party/corpora/toy4/";

// A 512-piece BPE model (256 of them the byte-fallback pieces) trained on the first 200 KB of
// english.train.txt, written to dir.
fs::path train_model(const fs::path& dir) {
  const std::string text = monet::read_file(kCorpus + "english.train.txt").substr(0, 200'000);
  monet::write_file_atomic(dir / "train.txt", text);
  const auto status = sentencepiece::SentencePieceTrainer::Train(
      "--input=" + (dir / "train.txt").string() + " --model_prefix=" + (dir / "sp").string() +
      " --vocab_size=512 --model_type=bpe --byte_fallback=true --remove_extra_whitespaces=false"
      " --normalization_rule_name=identity --add_dummy_prefix=false --unk_id=0 --bos_id=1"
      " --eos_id=2 --pad_id=-1 --num_threads=1");
  EXPECT_TRUE(status.ok()) << status.ToString();
  return dir / "sp.model";
}

}  // namespace

TEST(SentencePiece, RoundTripsHeldOutTextInFewerTokensThanBytes) {
  TempDir t("sp_roundtrip");
  const monet::SentencePieceTokenizer tok(train_model(t.path()));
  EXPECT_EQ(tok.vocab_size(), 512);
  EXPECT_EQ(tok.name(), "sentencepiece");
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  // Held out, with newlines, tabs, double spaces and a byte no training text had (byte fallback).
  const std::string text = monet::read_file(kCorpus + "english.val.txt").substr(0, 4000) +
                           "\n\ttwo  spaces, ünïcode and a \x01 control byte\n";
  const std::vector<int32_t> ids = tok.encode(text);
  ASSERT_FALSE(ids.empty());
  for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < 512) << id;
  EXPECT_LT(ids.size(), text.size() * 3 / 4);  // a BPE of 512 pieces compresses English
  EXPECT_EQ(tok.decode(ids), text);
  // The bytes the tokens stand for add up to the text's (bits per byte count them); control
  // pieces stand for none.
  int64_t bytes = 0;
  for (int32_t id : ids) bytes += tok.token_bytes(id);
  EXPECT_EQ(bytes, static_cast<int64_t>(text.size()));
  EXPECT_EQ(tok.token_bytes(tok.bos_id()), 0);
  EXPECT_EQ(tok.token_bytes(tok.eos_id()), 0);
}

TEST(SentencePiece, BadFilesAndIdsAreOneLineErrors) {
  TempDir t("sp_errors");
  EXPECT_TRUE(ThrowsWith([&] { monet::SentencePieceTokenizer tok(t / "absent.model"); },
                         {"absent.model", "does not exist"}));
  monet::write_file_atomic(t / "bytes.model", "these bytes are not a protobuf of a model\n");
  EXPECT_TRUE(ThrowsWith([&] { monet::SentencePieceTokenizer tok(t / "bytes.model"); },
                         {"bytes.model", "is not a SentencePiece model"}));
  const monet::SentencePieceTokenizer tok(train_model(t.path()));
  EXPECT_TRUE(ThrowsWith([&] { tok.decode({5, 512}); }, {"sp.model", "id 512 at position 1"}));
  EXPECT_TRUE(ThrowsWith([&] { tok.decode({-1}); }, {"id -1 at position 0"}));
}
#endif  // MONET_WITH_SENTENCEPIECE
