// Fuzz target: the state.json of a checkpoint (parse_train_state, train/checkpoint.h).
#include "core/error.h"
#include "fuzz/fuzz.h"
#include "train/checkpoint.h"

namespace monet::fuzz {

void fuzz_one(std::string_view input) {
  parse_train_state(std::string(input), "fuzz");
}

std::vector<std::string> dictionary() {
  return {"\"step\":",    "\"batcher\":", "\"rng\":",
          "\"batches\":", "\"format\":",  "\"monet-cpp train state 1\"",
          "[0, 0, 0, 0]", "[1, 2, 3]"};
}

bool length_prefixed() {
  return false;
}

}  // namespace monet::fuzz
