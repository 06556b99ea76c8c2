// The op-level FLOP counter: ops report their own floating-point work, so a table of FLOPs per
// token is counted by the code that does the work, not typed in.
//
//   FlopCounter c;                       // starts counting in this thread
//   { FlopScope s(c, "routing"); ... }   // attribute the ops in this scope to "routing"
//   c.total(), c.by_category()
//
// Counts follow the usual convention: a multiply-add is 2 FLOPs (matmul 2·M·N·K), an elementwise
// op 1 per output element, a transcendental 1. Backward ops are counted like forward ones, and
// into the category that was active when their forward op ran (autograd nodes remember it), so
// a layer's FlopScope("routing") attributes its routing's backward to "routing" too.
#pragma once
#include <cstdint>
#include <map>
#include <string>

namespace monet {

class FlopCounter {
 public:
  FlopCounter();
  ~FlopCounter();
  FlopCounter(const FlopCounter&) = delete;
  FlopCounter& operator=(const FlopCounter&) = delete;
  int64_t total() const;
  const std::map<std::string, int64_t>& by_category() const { return counts_; }
  void add(int64_t n);
  std::string category = "other";

 private:
  FlopCounter* prev_;
  std::map<std::string, int64_t> counts_;
};

// Attribute the FLOPs counted inside this scope to `category` of the active counter.
class FlopScope {
 public:
  explicit FlopScope(const std::string& category);
  ~FlopScope();
  FlopScope(const FlopScope&) = delete;
  FlopScope& operator=(const FlopScope&) = delete;

 private:
  std::string prev_;
};

namespace flops {
void count(int64_t n);  // called by ops; a no-op when no counter is active
// The category FLOPs go to now; empty when no counter is active.
std::string current_category();
}

}  // namespace monet
