#include "util/progress.h"

#include <fmt/format.h>
#include <unistd.h>

namespace monet {

Progress::Progress(int64_t total_steps, int64_t first_step, std::FILE* out)
    : total_(total_steps),
      first_(first_step),
      out_(out),
      tty_(out != nullptr && isatty(fileno(out)) != 0),
      start_(std::chrono::steady_clock::now()) {}

double Progress::tokens_per_second() const {
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  return s > 0 ? static_cast<double>(tokens_) / s : 0.0;
}

void Progress::step(int64_t step, double loss, double lr, int64_t tokens, int64_t log_every) {
  tokens_ += tokens;
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const int64_t done = step + 1 - first_, left = total_ - step - 1;
  const double eta = done > 0 ? elapsed / static_cast<double>(done) * static_cast<double>(left) : 0;
  std::string text = fmt::format(
      "step {:>6}/{} | loss {:.4f} | {:>7.0f} tok/s | lr {:.2e} | ETA {}:{:02d}", step + 1, total_,
      loss, tokens_per_second(), lr, static_cast<int>(eta) / 60, static_cast<int>(eta) % 60);
  text += tag_;
  if (!out_) return;
  if (tty_) {
    fmt::print(out_, "\r\033[K{}", text);
    live_ = true;
  } else if (log_every > 0 && ((step + 1) % log_every == 0 || step + 1 == total_)) {
    fmt::print(out_, "{}\n", text);
  }
  std::fflush(out_);
}

void Progress::bar(int done, int total, const std::string& what) {
  constexpr int kWidth = 30;
  const int filled = total > 0 ? kWidth * done / total : kWidth;
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const std::string text =
      fmt::format("[{}{}] {}/{} {:.0f} s  {}", std::string(filled, '#'),
                  std::string(kWidth - filled, '.'), done, total, elapsed, what);
  if (!out_) return;
  if (tty_) {
    fmt::print(out_, "\r\033[K{}", text);
    live_ = done < total;
    if (!live_) fmt::print(out_, "\n");
  } else {
    fmt::print(out_, "{}\n", text);
  }
  std::fflush(out_);
}

void Progress::line(const std::string& text) {
  if (!out_) return;
  if (live_) fmt::print(out_, "\r\033[K");
  live_ = false;
  fmt::print(out_, "{}\n", text);
  std::fflush(out_);
}

}  // namespace monet
