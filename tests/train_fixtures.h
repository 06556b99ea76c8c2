// A very small corpus and model for the tests of the training loop.
#pragma once
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "train/config.h"
#include "util/fileio.h"

namespace monet::testing {

namespace fs = std::filesystem;

// Two small domains of text written by the test.
inline void write_corpus(const fs::path& dir) {
  fs::create_directories(dir);
  std::string a, b;
  for (int i = 0; i < 60; ++i)
    a += "the quick brown fox jumps over the lazy dog " + std::to_string(i) + "\n";
  for (int i = 0; i < 60; ++i)
    b += "def f" + std::to_string(i) + "(x):\n    return x * " + std::to_string(i) + "\n";
  write_file_atomic(dir / "prose.train.txt", a);
  write_file_atomic(dir / "prose.val.txt", a.substr(0, 400));
  write_file_atomic(dir / "code.train.txt", b);
  write_file_atomic(dir / "code.val.txt", b.substr(0, 400));
}

inline Config tiny_config(const fs::path& data, const std::string& ffn = R"({"kind": "dense"})") {
  return parse_config(nlohmann::json::parse(R"({
    "model": {"d": 16, "layers": 2, "heads": 2, "context": 16, "ffn": )" +
                                            ffn + R"(},
    "optim": {"lr": 3e-3, "warmup_steps": 2},
    "run": {"steps": 8, "batch": 4, "seed": 7, "eval_every": 4, "eval_windows": 4,
            "log_every": 100, "checkpoint_every": 3, "data": ")" +
                                            data.string() + R"("}})"));
}

inline std::FILE* quiet() {
  static std::FILE* f = std::fopen("/dev/null", "w");
  return f;
}

}  // namespace monet::testing
