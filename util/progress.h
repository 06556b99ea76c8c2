// The progress display of training (and of other long jobs): one live line redrawn in place on a
// terminal, plain log lines (one per `log_every` steps) when the output is a file or a pipe.
// A null output counts the tokens and prints nothing (the ranks of a job other than rank 0).
#pragma once
#include <chrono>
#include <cstdio>
#include <string>
#include <utility>

namespace monet {

class Progress {
 public:
  Progress(int64_t total_steps, int64_t first_step, std::FILE* out = stdout);
  // Report a finished step. tokens: tokens processed by this step.
  void step(int64_t step, double loss, double lr, int64_t tokens, int64_t log_every);
  // A generic progress bar for jobs counted in items (`monet table`): "[#####.....] 3/31 what";
  // one plain line per item when the output is not a terminal.
  void bar(int done, int total, const std::string& what);
  // Print a full line (evaluation results, checkpoints) without garbling the live line.
  void line(const std::string& text);
  double tokens_per_second() const;
  bool is_tty() const { return tty_; }
  // Appended to every step line: " | 2 ranks".
  void set_tag(std::string tag) { tag_ = std::move(tag); }
  // Plain lines even on a terminal (under mpirun, whose ranks write to a terminal of its own
  // whatever mpirun's output is).
  void set_plain() { tty_ = false; }

 private:
  int64_t total_, first_, tokens_ = 0;
  std::FILE* out_;
  std::string tag_;
  bool tty_, live_ = false;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace monet
