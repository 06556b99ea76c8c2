// Ctrl-C for long work. Inside an InterruptScope the first SIGINT or SIGTERM only raises a flag
// that the work polls at a safe point (between training steps, say) to stop cleanly; a second
// signal ends the process at once with status 128 + signal. The previous handlers come back when
// the scope ends.
//
// The flag is the one piece of process-wide mutable state a signal handler can reach; nothing
// else may read or write it.
//
// The handler runs on a stack of its own (sigaltstack, SA_ONSTACK), never below the interrupted
// code's stack pointer: oneDNN's JIT-compiled GEMM kernels keep data there, and a signal frame
// written over it corrupted the heap (a SIGINT during training with run.gemm onednn crashed in
// about 1 of 14 tries, with OpenBLAS in none of 40).
#pragma once
#include <signal.h>

#include <vector>

namespace monet {

class InterruptScope {
 public:
  // `note` is written to stderr on the first signal, e.g. "finishing this step, then saving".
  explicit InterruptScope(const char* note);
  ~InterruptScope();
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;

  bool interrupted() const;  // a signal arrived since the scope began
  int signal() const;        // which (SIGINT, SIGTERM), 0 if none
  // Whether the handler of the last signal ran on the scope's own stack (for the tests).
  bool handled_on_own_stack() const;

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
  stack_t old_stack_{};
  std::vector<char> stack_;
};

}  // namespace monet
