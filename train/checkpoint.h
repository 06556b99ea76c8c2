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
#include <functional>
#include <memory>

#include "nn/optim.h"
#include "nn/transformer.h"
#include "train/config.h"
#include "train/corpus.h"
#include "train/tokenizer.h"

namespace monet {

struct TrainState {
  int64_t step = 0;           // steps completed
  BatcherState batcher;
  std::array<uint64_t, 4> rng{};  // the trainer's own generator (noise in routing, if any)
};

// The checkpoint folder of `path`: `path` itself when it holds model.safetensors (or the index of
// its shards, model.safetensors.index.json), else
// `path/checkpoint` (or `path/checkpoint.prev` after a crash mid-swap). Errors name what is
// missing.
std::filesystem::path resolve_checkpoint(const std::filesystem::path& path);
// The run folder a resolved checkpoint belongs to: the parent of `checkpoint/` or
// `checkpoint.prev/`, else the folder itself (a checkpoint kept on its own, a Hugging Face folder).
std::filesystem::path run_folder(const std::filesystem::path& checkpoint);

// The error for a checkpoint tensor whose shape is not its parameter's, starting with `what`.
void check_checkpoint_shape(const std::string& what, const std::string& name, const Tensor& saved,
                            const Tensor& param);

void save_checkpoint(const std::filesystem::path& run_dir, const nn::Module& model,
                     const nn::Optimizer* optimizer, const Config& config, const TrainState& state);
// The same from named tensors: the model's (model_state, train/model.h) and the optimizer's state
// (null: none), e.g. expert shards gathered whole (train/expert_shards.h).
void save_checkpoint(const std::filesystem::path& run_dir, const nn::NamedTensors& model_tensors,
                     const nn::NamedTensors* optimizer_state, const Config& config,
                     const TrainState& state);

// Copies the checkpoint's tensors into `model`: the names must be exactly the model's, each shape
// must match (errors name the tensor and both shapes), and every value must be finite. With
// `config`, the model config recorded in model.safetensors (checkpoints written since the record
// was added) must equal it: an edited config.json that keeps the shapes (heads, activation,
// norm_eps) is refused, naming each difference.
void load_model_weights(const std::filesystem::path& ckpt_dir, nn::Module& model,
                        const ModelConfig* config = nullptr);
// The optimizer state; every value must be finite.
void load_optimizer_state(const std::filesystem::path& ckpt_dir, nn::Optimizer& optimizer);
// state.json, checked: step and batch count non-negative integers, each generator state four
// 64-bit words not all zero, no key twice. Errors start with `where`.
TrainState parse_train_state(const std::string& text, const std::string& where);
TrainState load_train_state(const std::filesystem::path& ckpt_dir);
Config load_checkpoint_config(const std::filesystem::path& ckpt_dir);

// A model built from the checkpoint's config with its weights loaded, in eval mode. `path` may
// also be a Hugging Face folder of the released MONET models (train/hf_checkpoint.h), whose
// loading is told to `note`.
std::shared_ptr<nn::Transformer> load_model(
    const std::filesystem::path& path, Config* config = nullptr, Device device = Device::cpu(),
    const std::function<void(const std::string&)>& note = nullptr);

// The config of a run folder, checkpoint or Hugging Face folder, without its weights: what a
// command checks its options against before loading anything.
Config load_run_config(const std::filesystem::path& path);

// The checkpoint's tokenizer: its tokenizer.model (SentencePiece) when it has one, else bytes.
std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& path);

}  // namespace monet
