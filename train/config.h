// The run configuration: a JSON file (configs/*.json), `--set key=value` overrides, and the
// config.json saved in every checkpoint.
//
// Schema (every key optional; defaults in brackets):
//   model: vocab [256], d [128], layers [4], heads [4] (must divide d), context [128],
//          norm_eps [1e-5], kv_heads [0] (grouped-query attention's key/value heads, a divisor
//          of heads; 0 = heads), rope_theta [10000] (RoPE's base θ),
//          ffn: {kind ["dense"], ...the keys of that kind}: each kind's keys, types, defaults
//               and rules are its registry row (monet/registry.h; `monet help config` lists them)
//   optim: name ["adamw"] adamw|sgd, lr [1e-3], min_lr [0] (cosine floor, <= lr),
//          weight_decay [0.1], beta1 [0.9], beta2 [0.95], eps [1e-8] (adamw only),
//          warmup_steps [0], grad_clip [1.0] (0 = off)
//   run:   steps [1000], batch [16], accumulate [1] (micro-batches of `batch` windows per step),
//          seed [0], eval_every [100] (0 = only at the end),
//          eval_windows [64] (windows per domain; 0 = every window), log_every [10],
//          checkpoint_every [0] (0 = only at the end), device ["cpu"] cpu|cuda,
//          data ["third_party/corpora/toy4"] (the corpus folder; a relative path is looked up
//          from the current directory, then from the config file's folder and its parents,
//          then in the repository monet was built from: find_data),
//          gemm ["auto"] auto|openblas|onednn (the CPU's GEMM library; auto = oneDNN where built),
//          precision ["fp32"] fp32|bf16 (bf16 products with f32 accumulation, CPU only),
//          expert_parallel [false] (under mpirun, SMoE layers keep E/R experts per rank and
//          send tokens to them: train/expert_shards.h)
//   finetune: init [""] (a checkpoint whose weights start the run: `monet finetune`; "" = the
//          seeded initialisation), freeze ["none"] (parameter groups left untouched: none, or a
//          comma list of routers, experts, non-experts; monet/registry.h defines the groups),
//          aux [true] (add the layers' auxiliary losses to the loss; false: log them only),
//          families [""] (with instruction data, the train.jsonl families trained on, a comma
//          list; "" = all)
//   run.data is a corpus folder (train/corpus.h) or a folder of instruction data holding
//   train.jsonl (train/instruct.h).
//
// Errors name the full dotted key: "unknown config key 'model.dd'", "config key 'run.steps' must
// be an integer, got string", "config key 'model.heads' must divide model.d ...".
//
// The FFN keys are not listed here: each kind declares its own in its registry row, with a type,
// a default and a rule, and this file reads them from there.
#pragma once
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/gemm_mode.h"
#include "core/settings.h"
#include "monet/registry.h"
#include "nn/optim.h"

namespace monet {

struct FfnConfig {
  const moe::FfnKind* kind = &moe::dense_kind();  // the registry row of model.ffn.kind
  // Every key of the kind, checked, defaults filled in, as the row's parse wrote them.
  nlohmann::json params = nlohmann::json::object();
  bool operator==(const FfnConfig&) const = default;
};

struct ModelConfig {
  int64_t vocab = 256, d = 128, layers = 4, heads = 4, context = 128;
  double norm_eps = 1e-5;
  int64_t kv_heads = 0;  // 0: heads (plain multi-head attention)
  double rope_theta = 10000.0;
  FfnConfig ffn;
  bool operator==(const ModelConfig&) const = default;
};

struct OptimConfig {
  nn::OptimizerKind name = nn::OptimizerKind::AdamW;  // names: nn::optimizer_kinds()
  double lr = 1e-3, min_lr = 0, weight_decay = 0.1, beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  int64_t warmup_steps = 0;
  double grad_clip = 1.0;
  bool operator==(const OptimConfig&) const = default;
};

struct RunConfig {
  int64_t steps = 1000, batch = 16, accumulate = 1;
  bool expert_parallel = false;
  uint64_t seed = 0;
  int64_t eval_every = 100, eval_windows = 64, log_every = 10, checkpoint_every = 0;
  DeviceType device = DeviceType::CPU;  // names: device_types() (core/settings.h)
  std::string data = "third_party/corpora/toy4";
  // The CPU's products (core/gemm_mode.h): a backend, or none for "auto" (oneDNN where built,
  // else OpenBLAS); the precision (bf16 inputs with f32 accumulation on the CPU only).
  std::optional<GemmBackend> gemm;
  Precision precision = Precision::F32;
  bool operator==(const RunConfig&) const = default;
};

// Fine-tuning: where the weights start, what stays frozen, whether the aux losses train.
struct FinetuneConfig {
  std::string init;  // "": the seeded initialisation
  std::string freeze = "none";
  bool aux = true;
  std::string families;  // "": every family of train.jsonl
  bool operator==(const FinetuneConfig&) const = default;
};

// The GEMM mode run.gemm and run.precision name (validated by parse_config).
GemmMode gemm_mode_of(const RunConfig& r);

// Build one with parse_config (parse_config(nlohmann::json::object()) for the defaults): a
// default-constructed Config has no ffn params, since their defaults depend on model.d.
struct Config {
  ModelConfig model;
  OptimConfig optim;
  RunConfig run;
  FinetuneConfig finetune;
  bool operator==(const Config&) const = default;
};

// Parses and validates; a missing key takes its default. `{}` gives the defaults.
Config parse_config(const nlohmann::json& j);
// Every key, defaults included: parse_config(to_json(c)) == c, and to_json of that is identical.
nlohmann::json to_json(const Config& c);

// Applies one `--set` override, "a.b.c=value": value is parsed as JSON when it parses ("100",
// "2e-3", "true", "{\"kind\": \"dense\"}") and is taken as a string otherwise ("cuda"). Errors on
// a missing '=' and on a key that is not in the schema (for model.ffn.*: not a key of any kind).
// Values are checked later, by parse_config.
void apply_override(nlohmann::json& j, std::string_view assignment);

// Parses the JSON `text`, applies the overrides in order, and parses the config; errors (malformed
// JSON included) are monet::Error prefixed with "config '<source>': ".
Config parse_config_text(std::string_view text, const std::vector<std::string>& overrides = {},
                         const std::string& source = "<text>");
// parse_config_text of a file's contents, the path as source.
Config load_config(const std::filesystem::path& path,
                   const std::vector<std::string>& overrides = {});
// Where a relative data path is: `data` itself when it exists from the current directory (or is
// absolute), else the first of near/data, near/../data, ... up to the root, else the copy in the
// repository this monet was built from; `data` unchanged when none exists (its loader then says
// so). load_config looks near the config file; load_model near the checkpoint: `monet` runs from
// any directory, and a run folder or an exported model finds its corpus.
std::string find_data(const std::string& data, const std::filesystem::path& near);
// Writes to_json(c), indented, atomically.
void save_config(const std::filesystem::path& path, const Config& c);

}  // namespace monet
