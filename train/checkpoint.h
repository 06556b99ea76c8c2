// Checkpoints: a folder `<run>/checkpoint/` holding
//   model.safetensors      every parameter and buffer, named as Module::named_parameters() /
//                          named_buffers() give them ("layers.0.attn.wq.weight", ...)
//   optimizer.safetensors  the optimizer state ("exp_avg.<param>", "exp_avg_sq.<param>", "step.<param>")
//   config.json            the full run configuration, defaults included
//   state.json             step, the batcher's RNG state and batch count, the trainer's RNG state
// The folder is written as `checkpoint.tmp/` and swapped in with renames (the old one becomes
// `checkpoint.prev/` for the instant of the swap), so a crash at any point leaves a complete
// checkpoint: `checkpoint/`, or `checkpoint.prev/` if the crash fell between the two renames.
#pragma once
#include <array>
#include <filesystem>
#include <memory>

#include "nn/optim.h"
#include "nn/transformer.h"
#include "train/config.h"
#include "train/corpus.h"

namespace monet {

struct TrainState {
  int64_t step = 0;           // steps completed
  BatcherState batcher;
  std::array<uint64_t, 4> rng{};  // the trainer's own generator (noise in routing, if any)
};

// The checkpoint folder of `path`: `path` itself when it holds model.safetensors, else
// `path/checkpoint` (or `path/checkpoint.prev` after a crash mid-swap). Errors name what is missing.
std::filesystem::path resolve_checkpoint(const std::filesystem::path& path);

void save_checkpoint(const std::filesystem::path& run_dir, const nn::Module& model,
                     const nn::Optimizer* optimizer, const Config& config, const TrainState& state);

// Copies the checkpoint's tensors into `model`: the names must be exactly the model's, and each
// shape must match (errors name the tensor and both shapes).
void load_model_weights(const std::filesystem::path& ckpt_dir, nn::Module& model);
void load_optimizer_state(const std::filesystem::path& ckpt_dir, nn::Optimizer& optimizer);
TrainState load_train_state(const std::filesystem::path& ckpt_dir);
// The state.json text load_train_state reads; errors say "checkpoint state '<source>' is
// malformed: ...".
TrainState parse_train_state(const std::string& text, const std::string& source = "<text>");
Config load_checkpoint_config(const std::filesystem::path& ckpt_dir);

// A model built from the checkpoint's config with its weights loaded, in eval mode.
std::shared_ptr<nn::Transformer> load_model(const std::filesystem::path& path, Config* config = nullptr,
                                            Device device = Device::cpu());

}  // namespace monet
