#include "util/interrupt.h"

#include <unistd.h>

#include <csignal>
#include <cstring>

namespace monet {
namespace {

volatile std::sig_atomic_t g_signal = 0;  // the first signal of the active scope, 0 if none
const char* g_note = "";

void on_signal(int sig) {
  if (g_signal != 0) _exit(128 + sig);  // the second one: stop now
  g_signal = sig;
  // Only async-signal-safe calls here: write(2), no fmt, no allocation.
  const char head[] = "\nmonet: ";
  const char tail[] = " (press Ctrl-C again to quit at once)\n";
  ssize_t ignored = write(STDERR_FILENO, head, sizeof(head) - 1);
  ignored = write(STDERR_FILENO, g_note, std::strlen(g_note));
  ignored = write(STDERR_FILENO, tail, sizeof(tail) - 1);
  (void)ignored;
}

}  // namespace

InterruptScope::InterruptScope(const char* note) {
  g_signal = 0;
  g_note = note;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int_);
  sigaction(SIGTERM, &sa, &old_term_);
}

InterruptScope::~InterruptScope() {
  sigaction(SIGINT, &old_int_, nullptr);
  sigaction(SIGTERM, &old_term_, nullptr);
  g_signal = 0;
}

bool InterruptScope::interrupted() const {
  return g_signal != 0;
}

int InterruptScope::signal() const {
  return g_signal;
}

}  // namespace monet
