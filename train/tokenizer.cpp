#include "train/tokenizer.h"

#include "core/error.h"

namespace monet {

std::vector<int32_t> ByteTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids(text.size());
  for (size_t i = 0; i < text.size(); ++i) ids[i] = static_cast<unsigned char>(text[i]);
  return ids;
}

std::string ByteTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string text(ids.size(), '\0');
  for (size_t i = 0; i < ids.size(); ++i) {
    MONET_CHECK(ids[i] >= 0 && ids[i] < 256, "byte tokenizer: cannot decode id {} at position {}",
                ids[i], i);
    text[i] = static_cast<char>(static_cast<unsigned char>(ids[i]));
  }
  return text;
}

const Tokenizer& byte_tokenizer() {
  static const ByteTokenizer tok;
  return tok;
}

std::unique_ptr<Tokenizer> make_tokenizer(const std::string& name) {
  if (name == "byte") return std::make_unique<ByteTokenizer>();
  throw Error(fmt::format("unknown tokenizer '{}' (known: byte)", name));
}

}  // namespace monet
