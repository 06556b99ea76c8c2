// The interpretability commands of the `monet` program, behind train/cli.cpp's option parsing:
//   monet experts --ckpt DIR [--data FOLDER] [--layer L] [--top K] [--out DIR]
//   monet mask    --ckpt DIR --domain NAME|all [--rule ratio:2] [--out DIR]
//   monet purge   --ckpt DIR --text FILE --score FILE --threshold R [--threshold R2 ...] [--out
//   DIR]
// Each loads the checkpoint, reads the corpus (the run's, unless --data), prints its report and
// writes its files to --out (default: a folder named after the command inside the run folder).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace monet::interp {

struct CommonArgs {
  std::string ckpt, data, out, device;
  int64_t batch = 16;
};

struct ExpertsArgs : CommonArgs {
  int layer = -1;       // -1: every site
  int64_t top = 10;     // contexts per expert
  int64_t windows = 0;  // windows per domain (0: all)
  int64_t window = 40;  // bytes of context either side
  bool train_split = false;
};
int run_experts_command(const ExpertsArgs& a);

struct MaskArgs : CommonArgs {
  std::string domain, rule = "ratio:2";
  int64_t select_windows = 256, eval_windows = 64;
  bool control = false;
  uint64_t seed = 0;
};
int run_mask_command(const MaskArgs& a);

struct PurgeArgs : CommonArgs {
  std::string text, score;
  std::vector<double> thresholds;
  int64_t text_windows = 256, eval_windows = 64;
};
int run_purge_command(const PurgeArgs& a);

}  // namespace monet::interp
