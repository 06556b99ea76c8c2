// The fuzz targets of the loaders (fuzz/fuzz_*.cpp) and the one rule they are held to: on any input
// a loader returns or throws monet::Error. Any other exception, a crash, a sanitizer report or a
// broken round trip is a finding.
//
// Each target defines fuzz_one(); two engines drive it:
//   - mutate_main.cpp (the default, MONET_FUZZ_ENGINE=mutate): a seeded mutation loop over the
//     committed corpus, any compiler, built with the sanitizers in build-asan/ (scripts/fuzz.sh);
//   - libFuzzer (MONET_FUZZ_ENGINE=libfuzzer, clang only): libfuzzer_main.cpp, coverage-guided.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace monet::fuzz {

// The target: feeds `input` to one loader. Throws monet::Error on bad input, like the loader.
void fuzz_one(std::string_view input);
// Tokens of the target's format (keys, type names) that mutate_main.cpp splices into inputs: a
// mutation loop without coverage feedback rarely spells "data_offsets" by flipping bytes.
std::vector<std::string> dictionary();
// Whether an input starts with an 8-byte little-endian length of the text after it (safetensors):
// mutate_main.cpp then also sets that length to match the text, to get past the first check.
bool length_prefixed();

// Calls fuzz_one. Returns true when it returned and false when it threw monet::Error (its message
// in *error when error is given). Anything else is a finding: it prints what was thrown and aborts
// (so a sanitizer build saves the input, see mutate_main.cpp).
bool run_guarded(std::string_view input, std::string* error = nullptr);

// A failed property of a target (a round trip that does not give back what went in): prints
// `what` and aborts, like run_guarded.
[[noreturn]] void fail(const std::string& what);

}  // namespace monet::fuzz
