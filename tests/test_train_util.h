// Helpers shared by the tests of train/: a temporary folder removed on scope exit, and a check that
// a call throws monet::Error with given words in its message.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <initializer_list>
#include <string>
#include <string_view>

#include "core/error.h"

namespace monet::testing {

class TempDir {
 public:
  explicit TempDir(const std::string& tag)
      : path_(std::filesystem::temp_directory_path() /
              ("monet_" + tag + "_" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// How often `what` occurs in `s` (overlapping occurrences counted).
inline size_t count_of(std::string_view s, std::string_view what) {
  size_t n = 0;
  for (size_t at = s.find(what); at != std::string_view::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

// EXPECT_TRUE(ThrowsWith([&] { ... }, {"word", "other"})): a monet::Error whose message contains
// every word.
template <class F>
::testing::AssertionResult ThrowsWith(F&& f, std::initializer_list<std::string_view> words) {
  try {
    f();
  } catch (const monet::Error& e) {
    const std::string msg = e.what();
    for (std::string_view w : words) {
      if (msg.find(w) == std::string::npos) {
        return ::testing::AssertionFailure() << "message \"" << msg << "\" lacks \"" << w << "\"";
      }
    }
    return ::testing::AssertionSuccess() << msg;
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw a non-monet exception: " << e.what();
  }
  return ::testing::AssertionFailure() << "did not throw";
}

}  // namespace monet::testing
