// What `monet experts`, `monet mask` and `monet purge` share: the options that name a checkpoint
// and its data, and the loaded run. Each command loads the checkpoint, reads the corpus (the
// run's, unless --data), prints its report and writes its files to --out (default: a folder named
// after the command inside the run folder).
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "app/command.h"
#include "eval/experts.h"
#include "train/config.h"
#include "train/corpus.h"
#include "train/tokenizer.h"

namespace monet::app {

struct CheckpointArgs {
  std::string ckpt, data, out, device;
  int64_t batch = 16;
  SaeSpliceArgs sae;
};
// --ckpt, --data, --out (whose default names `default_out`), --batch, --device, --sae,
// --sae-error. With --sae the experts are the SAEs' features.
void add_checkpoint_options(CLI::App* cmd, CheckpointArgs& a, const std::string& default_out);

struct LoadedRun {
  Config cfg;
  std::shared_ptr<nn::Transformer> model;
  Corpus corpus;
  std::filesystem::path run_dir;                 // where default outputs go
  std::unique_ptr<interp::ExpertModel> experts;  // the model's expert view
  std::unique_ptr<Tokenizer> tokenizer;          // the checkpoint's (bytes for runs trained here)
  // --out, or run_dir / name.
  std::filesystem::path out_dir(const CheckpointArgs& a, const std::string& name) const;
};
LoadedRun load_run(const CheckpointArgs& a);

}  // namespace monet::app
