// One name table per enum setting (a device type, a GEMM backend, a precision, an optimizer): the
// one place its spellings live. The config reader, the command line's choices and the error
// messages all read them from the table, so a name is never spelled twice.
#pragma once
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"

namespace monet {

template <class E>
class NameTable {
 public:
  NameTable(std::string what, std::initializer_list<std::pair<E, const char*>> rows)
      : what_(std::move(what)), rows_(rows) {}

  // The value's name ("?" for a value outside the table, which a switch would have missed).
  const char* name(E e) const {
    for (const auto& [v, n] : rows_)
      if (v == e) return n;
    return "?";
  }
  std::optional<E> find(std::string_view name) const {
    for (const auto& [v, n] : rows_)
      if (name == n) return v;
    return std::nullopt;
  }
  // The value named `name`; else an error naming `where` (an option or a config key), the kind of
  // setting and the choices: "config key 'run.gemm': unknown GEMM backend 'mkl' (choose ...)".
  E parse(std::string_view name, std::string_view where) const {
    if (std::optional<E> v = find(name)) return *v;
    throw Error(fmt::format("{}: unknown {} '{}' (choose {})", where, what_, name,
                            fmt::join(names(), ", ")));
  }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& [v, n] : rows_) out.emplace_back(n);
    return out;
  }

 private:
  std::string what_;
  std::vector<std::pair<E, const char*>> rows_;
};

}  // namespace monet
