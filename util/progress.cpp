#include "util/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>

namespace monet {

Progress::Progress(int64_t total_steps, int64_t first_step, std::FILE* out)
    : total_(total_steps),
      first_(first_step),
      out_(out),
      tty_(out != nullptr && isatty(fileno(out)) != 0),
      start_(std::chrono::steady_clock::now()) {}

double Progress::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

double Progress::tokens_per_second() const {
  const double s = elapsed();
  return s > 0 ? static_cast<double>(tokens_) / s : 0.0;
}

std::string format_duration(double seconds) {
  const auto s = static_cast<int64_t>(std::max(0.0, seconds) + 0.5);
  if (s >= 3600) return fmt::format("{}:{:02d}:{:02d}", s / 3600, s / 60 % 60, s % 60);
  return fmt::format("{}:{:02d}", s / 60, s % 60);
}

void Progress::step(int64_t step, double loss, double lr, int64_t tokens, int64_t log_every,
                    const std::string& extra) {
  tokens_ += tokens;
  const int64_t done = step + 1 - first_, left = total_ - step - 1;
  const double eta =
      done > 0 ? elapsed() / static_cast<double>(done) * static_cast<double>(left) : 0;
  const std::string text =
      fmt::format("step {:>6}/{} | loss {:.4f} | {:>7.0f} tok/s | lr {:.2e} | ETA {}", step + 1,
                  total_, loss, tokens_per_second(), lr, format_duration(eta)) +
      tag_;
  if (!out_) return;
  const bool keep = log_every > 0 && ((step + 1) % log_every == 0 || step + 1 == total_);
  if (keep) {  // a line that stays, on a terminal as in a file
    fmt::print(out_, "{}{}{}\n", live_ ? "\r\033[K" : "", text, extra);
    live_ = false;
  } else if (tty_) {
    fmt::print(out_, "\r\033[K{}", text);
    live_ = true;
  }
  std::fflush(out_);
}

void Progress::bar(int64_t done, int64_t total, const std::string& what) {
  constexpr int64_t kWidth = 30;
  const int64_t filled = total > 0 ? std::clamp<int64_t>(kWidth * done / total, 0, kWidth) : kWidth;
  const double t = elapsed();
  if (done < bar_done_) bar_start_ = t;
  bar_done_ = done;
  const std::string eta =
      done > 0 && done < total
          ? fmt::format(", ETA {}", format_duration((t - bar_start_) / static_cast<double>(done) *
                                                    static_cast<double>(total - done)))
          : "";
  const std::string text =
      fmt::format("[{}{}] {}/{} {}{}  {}", std::string(static_cast<size_t>(filled), '#'),
                  std::string(static_cast<size_t>(kWidth - filled), '.'), done, total,
                  format_duration(t), eta, what);
  if (!out_) return;
  if (tty_) {
    fmt::print(out_, "\r\033[K{}", text);
    live_ = done < total;
    if (!live_) fmt::print(out_, "\n");
  } else if (done >= total || last_plain_ < 0 || t - last_plain_ >= plain_interval_) {
    fmt::print(out_, "{}\n", text);
    last_plain_ = t;
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
