#include <cstdio>
#include <cstdlib>
#include <exception>
#include <typeinfo>

#include "core/error.h"
#include "fuzz/fuzz.h"

namespace monet::fuzz {

void fail(const std::string& what) {
  std::fprintf(stderr, "fuzz: FAILURE: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

bool run_guarded(std::string_view input, std::string* error) {
  try {
    fuzz_one(input);
    return true;
  } catch (const Error& e) {  // the one exception a loader may throw on bad input
    if (error) *error = e.what();
    return false;
  } catch (const std::exception& e) {
    fail(fmt::format("threw {} (not monet::Error): {}", typeid(e).name(), e.what()));
  } catch (...) {
    fail("threw something that is not a std::exception");
  }
}

}  // namespace monet::fuzz
