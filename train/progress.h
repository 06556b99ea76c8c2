// The training progress display: one live line redrawn in place on a terminal, plain log lines
// (one per `log_every` steps) when the output is a file or a pipe.
#pragma once
#include <chrono>
#include <cstdio>
#include <string>

namespace monet {

class Progress {
 public:
  Progress(int64_t total_steps, int64_t first_step, std::FILE* out = stdout);
  // Report a finished step. tokens: tokens processed by this step.
  void step(int64_t step, double loss, double lr, int64_t tokens, int64_t log_every);
  // Print a full line (evaluation results, checkpoints) without garbling the live line.
  void line(const std::string& text);
  double tokens_per_second() const;
  bool is_tty() const { return tty_; }

 private:
  int64_t total_, first_, tokens_ = 0;
  std::FILE* out_;
  bool tty_, live_ = false;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace monet
