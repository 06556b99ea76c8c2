// The libFuzzer entry point (MONET_FUZZ_ENGINE=libfuzzer): libFuzzer owns main and the loop.
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  monet::fuzz::run_guarded({reinterpret_cast<const char*>(data), size});
  return 0;
}
