// Fuzz target: the run configuration (train/config.h) from text and `--set` overrides, as
// `monet train --config FILE --set ...` reads them. The input is the file's text, then each
// override after a NUL byte: "{...}\0run.steps=10\0model.ffn.kind=smoe".
//
// What parses must round-trip as config.h promises (parse_config(to_json(c)) == c, and to_json of
// that is identical), through the text save_config writes into every checkpoint.
#include "core/error.h"
#include "fuzz/fuzz.h"
#include "monet/registry.h"
#include "train/config.h"

namespace monet::fuzz {

void fuzz_one(std::string_view input) {
  const size_t nul = input.find('\0');
  const std::string_view text = input.substr(0, nul);
  std::vector<std::string> overrides;
  for (size_t at = nul; at != std::string_view::npos;) {
    const size_t next = input.find('\0', at + 1);
    overrides.emplace_back(
        input.substr(at + 1, next == std::string_view::npos ? next : next - at - 1));
    at = next;
  }
  const Config c = parse_config_text(text, overrides, "fuzz");
  const std::string saved = to_json(c).dump(2) + "\n";  // what save_config writes
  try {
    const Config back = parse_config_text(saved, {}, "fuzz, saved");
    if (!(back == c)) fail("config: parse(to_json(c)) != c");
    if (to_json(back) != to_json(c)) fail("config: to_json(parse(to_json(c))) != to_json(c)");
  } catch (const Error& e) {
    fail(fmt::format("config: a saved config does not load: {}", e.what()));
  }
}

// The keys of the schema, as JSON keys and as the left side of overrides, and the kinds' names.
std::vector<std::string> dictionary() {
  std::vector<std::string> words;
  const nlohmann::json defaults = to_json(parse_config(nlohmann::json::object()));
  for (const auto& [section, keys] : defaults.items()) {
    words.push_back(fmt::format("\"{}\":", section));
    for (const auto& [key, value] : keys.items()) {
      words.push_back(fmt::format("\"{}\":", key));
      words.push_back(fmt::format("{}.{}=", section, key));
    }
  }
  for (const moe::FfnKind* kind : moe::ffn_kinds()) {
    words.push_back(fmt::format("\"{}\"", kind->name));
    words.push_back(fmt::format("model.ffn.kind={}", kind->name));
    for (const moe::FieldInfo& f : kind->fields) {
      words.push_back(fmt::format("\"{}\":", f.key));
      words.push_back(fmt::format("model.ffn.{}=", f.key));
    }
  }
  words.push_back(std::string(1, '\0'));  // a new override
  return words;
}

bool length_prefixed() {
  return false;
}

}  // namespace monet::fuzz
