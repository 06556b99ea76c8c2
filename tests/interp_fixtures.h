// Fixtures shared by test_interp_*.cpp: the FFN kinds as model.ffn objects, a tiny untrained
// two-layer transformer built from one, and two small text domains (code and prose).
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/random.h"
#include "nn/transformer.h"
#include "train/config.h"
#include "train/corpus.h"
#include "train/model.h"
#include "train/tokenizer.h"

namespace monet::testing::interp_fixtures {

inline constexpr int64_t kContext = 16;
inline constexpr const char* kMonet =
    R"({"kind": "monet_vd", "heads": 2, "sqrt_n": 4, "dim": 4, "topk": 2, "group": 2})";
inline constexpr const char* kMonetHd =
    R"({"kind": "monet_hd", "heads": 2, "sqrt_n": 4, "dim": 4, "topk": 2, "group": 2})";
inline constexpr const char* kSmoe = R"({"kind": "smoe", "experts": 4, "gating": "gshard"})";
inline constexpr const char* kPeer =
    R"({"kind": "peer", "sqrt_n": 4, "heads": 2, "topk": 2, "d_query": 8})";

// model.ffn.kind of an ffn object.
inline std::string kind_of(const std::string& ffn) {
  return nlohmann::json::parse(ffn).at("kind").get<std::string>();
}

inline std::shared_ptr<nn::Transformer> tiny_model(const std::string& ffn, uint64_t seed = 3) {
  const Config cfg = parse_config(nlohmann::json::parse(
      R"({"model": {"d": 16, "layers": 2, "heads": 2, "context": 16, "ffn": )" + ffn + "}}"));
  Generator g(seed);
  auto m = build_model(cfg.model, g);
  m->eval();
  return m;
}

// Two small domains with different text.
inline std::vector<Domain> tiny_domains() {
  ByteTokenizer tok;
  std::string code, prose;
  for (int i = 0; i < 12; ++i)
    code += "def f" + std::to_string(i) + "(x):  # add\n    return x + 1\n";
  for (int i = 0; i < 10; ++i) prose += "The quick brown fox jumps over the lazy dog, again. ";
  return {{"code", tok.encode(code), tok.encode(code.substr(0, 150))},
          {"prose", tok.encode(prose), tok.encode(prose.substr(0, 97))}};
}

}  // namespace monet::testing::interp_fixtures
