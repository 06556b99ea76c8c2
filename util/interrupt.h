// Ctrl-C for long work. Inside an InterruptScope the first SIGINT or SIGTERM only raises a flag
// that the work polls at a safe point (between training steps, say) to stop cleanly; a second
// signal ends the process at once with status 128 + signal. The previous handlers come back when
// the scope ends.
//
// The flag is the one piece of process-wide mutable state a signal handler can reach; nothing
// else may read or write it.
#pragma once
#include <signal.h>

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

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

}  // namespace monet
