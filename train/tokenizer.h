// Tokenizers turn text into int32 token ids and back. The interface is what the corpus, the
// trainer and the sampler need. ByteTokenizer (one token per byte, vocab 256) is what models
// trained here use; SentencePieceTokenizer (train/sentencepiece_tokenizer.h) reads the
// `tokenizer.model` of LLaMA-style checkpoints.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace monet {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual int64_t vocab_size() const = 0;
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  // Errors on an id outside [0, vocab_size()).
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  virtual std::string name() const = 0;  // as written in configs and checkpoints
  // How many bytes of text the token stands for: bits per byte divide a text's total nats by its
  // bytes (train/evaluate.h), so models with different tokenizers compare on the same text.
  virtual int64_t token_bytes(int32_t id) const = 0;
  // The id a sequence starts with (LLaMA's <s>), -1 when the tokenizer has none. Prompts to
  // models trained with one begin with it.
  virtual int32_t bos_id() const { return -1; }
};

// Token i is the byte i: lossless on any byte string (UTF-8 or not).
class ByteTokenizer final : public Tokenizer {
 public:
  int64_t vocab_size() const override { return 256; }
  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  std::string name() const override { return "byte"; }
  int64_t token_bytes(int32_t /*id*/) const override { return 1; }
};

// The byte tokenizer every model trained here uses (one immutable instance).
const Tokenizer& byte_tokenizer();

// The tokenizer called `name` ("byte"); an error lists the known names.
std::unique_ptr<Tokenizer> make_tokenizer(const std::string& name);

}  // namespace monet
