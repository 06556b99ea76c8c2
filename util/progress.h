// The progress display of training (and of other long jobs). On a terminal, one live line redrawn
// in place, and a permanent line every `log_every` steps so that the loss history stays on screen
// (as nanoGPT and llm.c print it). When the output is a file or a pipe, plain lines only: a step
// line every `log_every` steps, and a bar's line at most every few seconds (and at its end), so a
// log holds a handful of lines per job, not one per item.
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
  // Report a finished step. tokens: tokens processed by this step. `extra` (" | aux 0.012 | ...")
  // goes on the permanent lines only: the MoE numbers of the step.
  void step(int64_t step, double loss, double lr, int64_t tokens, int64_t log_every,
            const std::string& extra = "");
  // A generic progress bar for jobs counted in items (`monet table`, `monet eval`):
  // "[#####.....] 3/31 0:12, ETA 0:40  what". A count lower than the last starts a new bar (the
  // next domain of an evaluation): its ETA is its own.
  void bar(int64_t done, int64_t total, const std::string& what);
  // Print a full line (evaluation results, checkpoints) without garbling the live line.
  void line(const std::string& text);
  double tokens_per_second() const;
  bool is_tty() const { return tty_; }
  // Appended to every step line: " | 2 ranks".
  void set_tag(std::string tag) { tag_ = std::move(tag); }
  // Plain lines even on a terminal (under mpirun, whose ranks write to a terminal of its own
  // whatever mpirun's output is).
  void set_plain() { tty_ = false; }
  // The least time between two plain bar lines (5 s by default).
  void set_plain_interval(double seconds) { plain_interval_ = seconds; }

 private:
  double elapsed() const;
  int64_t total_, first_, tokens_ = 0;
  std::FILE* out_;
  std::string tag_;
  bool tty_, live_ = false;
  double plain_interval_ = 5.0, last_plain_ = -1.0;
  int64_t bar_done_ = 0;    // the last bar's count: a smaller one starts a new bar (its ETA)
  double bar_start_ = 0.0;  // when the current bar started, in seconds from start_
  std::chrono::steady_clock::time_point start_;
};

// "1:05" or "1:02:05": a duration in seconds, for ETAs.
std::string format_duration(double seconds);

}  // namespace monet
