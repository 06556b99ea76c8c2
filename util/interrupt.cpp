#include "util/interrupt.h"

#include <unistd.h>

#include <csignal>
#include <cstring>

namespace monet {
namespace {

volatile std::sig_atomic_t g_signal = 0;  // the first signal of the active scope, 0 if none
const char* g_note = "";
// An address inside the handler's frame, for handled_on_own_stack().
const volatile char* volatile g_frame = nullptr;

void on_signal(int sig) {
  if (g_signal != 0) _exit(128 + sig);  // the second one: stop now
  volatile char here = 0;
  g_frame = &here;
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

InterruptScope::InterruptScope(const char* note) : stack_(256 * 1024) {
  g_signal = 0;
  g_note = note;
  g_frame = nullptr;
  stack_t ss{};
  ss.ss_sp = stack_.data();
  ss.ss_size = stack_.size();
  sigaltstack(&ss, &old_stack_);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int_);
  sigaction(SIGTERM, &sa, &old_term_);
}

InterruptScope::~InterruptScope() {
  sigaction(SIGINT, &old_int_, nullptr);
  sigaction(SIGTERM, &old_term_, nullptr);
  sigaltstack(&old_stack_, nullptr);
  g_signal = 0;
}

bool InterruptScope::handled_on_own_stack() const {
  const char* frame = const_cast<const char*>(g_frame);
  return frame != nullptr && frame >= stack_.data() && frame < stack_.data() + stack_.size();
}

bool InterruptScope::interrupted() const {
  return g_signal != 0;
}

int InterruptScope::signal() const {
  return g_signal;
}

}  // namespace monet
