// The one exception type of the library. Messages are built with fmt and name the op and shapes.
#pragma once
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <stdexcept>
#include <string>

namespace monet {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// MONET_CHECK(cond, "fmt {}", args...) throws monet::Error when cond is false. Used for user input
// (shapes, configs, files); never compiled out.
#define MONET_CHECK(COND, ...)                                   \
  do {                                                           \
    if (!(COND)) throw ::monet::Error(::fmt::format(__VA_ARGS__)); \
  } while (0)

}  // namespace monet
