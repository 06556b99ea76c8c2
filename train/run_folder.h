// A training run's folder: made ready for a new run (never overwriting one by accident), and its
// record — log.jsonl (one JSON object per step or evaluation) and loss.svg.
#pragma once
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "train/evaluate.h"

namespace monet {

// A folder with a config.json but no checkpoint: its run was stopped (a second Ctrl-C, kill -9)
// before the first checkpoint was written, so it holds nothing to lose.
bool never_checkpointed(const std::filesystem::path& dir);

// Makes `dir` ready for a run. A new run (resume false) needs an empty folder, one that
// never_checkpointed, or `force` (the old run's checkpoints, log and plot are removed); otherwise
// an error names --resume and --force. Returns a note when it started a never-checkpointed run
// over, else "".
std::string prepare_run_folder(const std::filesystem::path& dir, bool resume, bool force);

// On resume, the log lines after the checkpoint's step go.
void truncate_log(const std::filesystem::path& log, int64_t step);

// "eval @ step 40:  cpp 2.103 bpb  ..." and its log.jsonl object.
std::string eval_line(int64_t step, const std::vector<DomainEval>& ev);
nlohmann::json eval_log_line(int64_t step, const std::vector<DomainEval>& ev);

// loss.svg from log.jsonl: the raw train loss (faint), its smoothed version, the val loss.
void write_loss_plot(const std::filesystem::path& log, const std::filesystem::path& svg);

}  // namespace monet
