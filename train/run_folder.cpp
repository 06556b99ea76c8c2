#include "train/run_folder.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <fstream>

#include "core/error.h"
#include "util/fileio.h"
#include "util/plot.h"

namespace monet {

namespace fs = std::filesystem;
using nlohmann::json;

bool never_checkpointed(const fs::path& dir) {
  return fs::exists(dir / "config.json") && !fs::exists(dir / "checkpoint" / "model.safetensors") &&
         !fs::exists(dir / "checkpoint.prev" / "model.safetensors");
}

std::string prepare_run_folder(const fs::path& dir, bool resume, bool force) {
  const char* run_files[] = {"checkpoint", "checkpoint.prev", "checkpoint.tmp",
                             "log.jsonl",  "loss.svg",        "config.json"};
  std::string note;
  if (!resume) {
    std::vector<std::string> found;
    for (const char* f : run_files)
      if (fs::exists(dir / f)) found.push_back(f);
    const bool nothing_to_lose = never_checkpointed(dir);
    MONET_CHECK(found.empty() || force || nothing_to_lose,
                "train: '{}' already holds a run ({}); continue it with `monet train --resume {}`, "
                "or start it over with --force",
                dir.string(), fmt::join(found, ", "), dir.string());
    if (!found.empty() && nothing_to_lose && !force)
      note = fmt::format("'{}' holds a run stopped before its first checkpoint: starting it over",
                         dir.string());
    for (const char* f : run_files) fs::remove_all(dir / f);
  }
  fs::create_directories(dir);
  return note;
}

void truncate_log(const fs::path& log, int64_t step) {
  if (!fs::exists(log)) return;
  std::ifstream in(log);
  std::string line, kept;
  while (std::getline(in, line)) {
    json j = json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.value("step", int64_t{0}) <= step) kept += line + "\n";
  }
  write_file_atomic(log, kept);
}

std::string eval_line(int64_t step, const std::vector<DomainEval>& ev) {
  std::string s = fmt::format("eval @ step {}:", step);
  for (const DomainEval& e : ev) s += fmt::format("  {} {:.3f} bpb", e.domain, e.bpb);
  return s;
}

json eval_log_line(int64_t step, const std::vector<DomainEval>& ev) {
  json j = {{"step", step}, {"eval", json::object()}};
  for (const DomainEval& e : ev)
    j["eval"][e.domain] = {{"loss", e.loss}, {"bpb", e.bpb}, {"tokens", e.tokens}};
  return j;
}

// The raw train loss (one point a step, faint, no markers), its smoothed version in the same
// colour, and the validation loss at each evaluation (markers, so that a single one shows).
void write_loss_plot(const fs::path& log, const fs::path& svg) {
  Series raw{"train loss", {}, {}}, val{"val loss (all)", {}, {}};
  std::ifstream in(log);
  std::string line;
  while (std::getline(in, line)) {
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded()) continue;
    const double step = j.value("step", 0.0);
    if (j.contains("loss")) raw.x.push_back(step), raw.y.push_back(j["loss"].get<double>());
    if (j.contains("eval") && j["eval"].contains("all"))
      val.x.push_back(step), val.y.push_back(j["eval"]["all"]["loss"].get<double>());
  }
  // TensorBoard's debiased EMA (util/plot.h). Its weight makes the average's memory,
  // 1 / (1 - weight) points, 1% of the run and at least 5 points (0.8 up to 500 steps, 0.95 at
  // 2000), so that it spans the same share of the axis however long the run; 5% lagged visibly
  // behind the first steps' fast drop. Rounded to the 3 digits the legend shows.
  const double memory = std::max(5.0, static_cast<double>(raw.y.size()) / 100);
  const double weight = std::round((1 - 1 / memory) * 1000) / 1000;
  Series ema{fmt::format("train loss (EMA {})", weight), raw.x, ema_smooth(raw.y, weight)};
  raw.markers = ema.markers = false;
  raw.opacity = 0.3;
  raw.style = ema.style = 0;
  val.style = 1;
  write_file_atomic(
      svg, svg_line_plot({raw, ema, val}, {"Loss", "step", "nats per token", false, false}));
}

}  // namespace monet
