// A SentencePiece model (`tokenizer.model`, as LLaMA and the released MONET checkpoints ship it) as
// a Tokenizer, through Debian's libsentencepiece. Issue #16 loads it beside a Hugging Face
// checkpoint; here it is the second implementation of the interface in tokenizer.h.
#pragma once
#include <filesystem>
#include <memory>

#include "train/tokenizer.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace monet {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  // Errors (one line naming the file) when it is missing or is not a SentencePiece model.
  explicit SentencePieceTokenizer(const std::filesystem::path& model_file);
  ~SentencePieceTokenizer() override;
  SentencePieceTokenizer(const SentencePieceTokenizer&) = delete;
  SentencePieceTokenizer& operator=(const SentencePieceTokenizer&) = delete;

  int64_t vocab_size() const override;
  // The pieces' ids, without BOS / EOS (a caller adds them where its model wants them).
  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  std::string name() const override { return "sentencepiece"; }
  // A piece's UTF-8 bytes with "▁" counted as the one space it stands for; a byte-fallback piece
  // <0xNN> is 1; control pieces (bos, eos) and unk are 0.
  int64_t token_bytes(int32_t id) const override;
  int32_t bos_id() const override;  // -1 when the model has none
  int32_t eos_id() const;

 private:
  std::filesystem::path file_;
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
};

}  // namespace monet
