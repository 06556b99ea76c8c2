#include "train/sentencepiece_tokenizer.h"

#include "core/error.h"

#ifdef MONET_WITH_SENTENCEPIECE
#include <sentencepiece_processor.h>

namespace monet {

SentencePieceTokenizer::SentencePieceTokenizer(const std::filesystem::path& model_file)
    : file_(model_file), sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
  MONET_CHECK(std::filesystem::is_regular_file(model_file),
              "tokenizer '{}' does not exist or is not a file", model_file.string());
  const auto status = sp_->Load(model_file.string());
  MONET_CHECK(status.ok(), "tokenizer '{}' is not a SentencePiece model ({})", model_file.string(),
              status.ToString());
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

int64_t SentencePieceTokenizer::vocab_size() const {
  return sp_->GetPieceSize();
}

int32_t SentencePieceTokenizer::bos_id() const {
  return sp_->bos_id();
}
int32_t SentencePieceTokenizer::eos_id() const {
  return sp_->eos_id();
}

int64_t SentencePieceTokenizer::token_bytes(int32_t id) const {
  if (id < 0 || id >= vocab_size() || sp_->IsControl(id) || sp_->IsUnknown(id)) return 0;
  if (sp_->IsByte(id)) return 1;
  // Each "▁" (U+2581, 3 bytes in UTF-8) stands for one space.
  const std::string piece = sp_->IdToPiece(id);
  const std::string_view space = "\xe2\x96\x81";
  int64_t marks = 0;
  for (size_t i = piece.find(space); i != std::string::npos;
       i = piece.find(space, i + space.size()))
    ++marks;
  return static_cast<int64_t>(piece.size()) - 2 * marks;
}

std::vector<int32_t> SentencePieceTokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  const auto status = sp_->Encode(text, &ids);
  MONET_CHECK(status.ok(), "tokenizer '{}': cannot encode the text ({})", file_.string(),
              status.ToString());
  return {ids.begin(), ids.end()};
}

std::string SentencePieceTokenizer::decode(const std::vector<int32_t>& ids) const {
  const int64_t n = vocab_size();
  for (size_t i = 0; i < ids.size(); ++i)
    MONET_CHECK(ids[i] >= 0 && ids[i] < n,
                "tokenizer '{}': cannot decode id {} at position {} (vocabulary {})",
                file_.string(), ids[i], i, n);
  std::string text;
  const auto status = sp_->Decode(std::vector<int>(ids.begin(), ids.end()), &text);
  MONET_CHECK(status.ok(), "tokenizer '{}': cannot decode ({})", file_.string(), status.ToString());
  return text;
}

}  // namespace monet

#else  // a build without libsentencepiece-dev: a model that ships a tokenizer.model is refused

namespace sentencepiece {
class SentencePieceProcessor {};
}  // namespace sentencepiece

namespace monet {

SentencePieceTokenizer::SentencePieceTokenizer(const std::filesystem::path& model_file)
    : file_(model_file) {
  throw Error(
      fmt::format("tokenizer '{}' is a SentencePiece model, and this build has no SentencePiece "
                  "(install libsentencepiece-dev: scripts/deps.sh, then rebuild)",
                  model_file.string()));
}
SentencePieceTokenizer::~SentencePieceTokenizer() = default;
int64_t SentencePieceTokenizer::vocab_size() const {
  return 0;
}
std::vector<int32_t> SentencePieceTokenizer::encode(std::string_view) const {
  return {};
}
std::string SentencePieceTokenizer::decode(const std::vector<int32_t>&) const {
  return {};
}
int64_t SentencePieceTokenizer::token_bytes(int32_t) const {
  return 0;
}
int32_t SentencePieceTokenizer::bos_id() const {
  return -1;
}
int32_t SentencePieceTokenizer::eos_id() const {
  return -1;
}

}  // namespace monet
#endif
