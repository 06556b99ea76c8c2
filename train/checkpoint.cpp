#include "train/checkpoint.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

#include "core/autograd.h"
#include "core/ops.h"
#include "train/hf_checkpoint.h"
#include "train/model.h"
#include "train/safetensors.h"
#include "train/sentencepiece_tokenizer.h"
#include "util/fileio.h"
#include "util/json_value.h"

namespace monet {

namespace fs = std::filesystem;
using nlohmann::json;

fs::path resolve_checkpoint(const fs::path& path) {
  MONET_CHECK(fs::exists(path), "checkpoint '{}' does not exist", path.string());
  if (fs::exists(path / "model.safetensors") || fs::exists(path / "model.safetensors.index.json"))
    return path;
  for (const char* sub : {"checkpoint", "checkpoint.prev"})
    if (fs::exists(path / sub / "model.safetensors")) return path / sub;
  for (const char* pickle : {"pytorch_model.bin", "pytorch_model.bin.index.json"})
    MONET_CHECK(!fs::exists(path / pickle),
                "'{}' holds {}, a PyTorch pickle, which monet-cpp does not read (unpickling runs "
                "code); convert it to model.safetensors with the safetensors package first",
                path.string(), pickle);
  MONET_CHECK(false, "'{}' holds no checkpoint (no model.safetensors in it or in checkpoint/)",
              path.string());
  return path;
}

fs::path run_folder(const fs::path& checkpoint) {
  const std::string name = checkpoint.filename().string();
  return name == "checkpoint" || name == "checkpoint.prev" ? checkpoint.parent_path() : checkpoint;
}

void check_checkpoint_shape(const std::string& what, const std::string& name, const Tensor& saved,
                            const Tensor& param) {
  MONET_CHECK(saved.shape() == param.shape(),
              "{}: tensor '{}' has shape {} in the checkpoint but {} in the model built from its "
              "config",
              what, name, shape_str(saved.shape()), shape_str(param.shape()));
}

namespace {

json state_to_json(const TrainState& s) {
  return {{"step", s.step},
          {"batcher", {{"rng", s.batcher.rng}, {"batches", s.batcher.batches}}},
          {"rng", s.rng},
          {"format", "monet-cpp train state 1"}};
}

// Copies `src` into the same-named `dst` tensors (converting the dtype): the names must be the
// same sets and each shape equal; errors start with `what`.
void copy_state(const nn::NamedTensors& dst, const NamedTensors& src, const std::string& what) {
  const std::map<std::string, Tensor> by_name(src.begin(), src.end());
  std::set<std::string> wanted;
  for (const auto& [name, t] : dst) {
    wanted.insert(name);
    auto it = by_name.find(name);
    MONET_CHECK(it != by_name.end(), "{}: tensor '{}' is missing", what, name);
    check_checkpoint_shape(what, name, it->second, t);
  }
  for (const auto& [name, t] : src)
    MONET_CHECK(wanted.count(name), "{}: unexpected tensor '{}'", what, name);
  NoGradGuard ng;
  for (const auto& [name, t] : dst) copy_(t, by_name.at(name).to(t.dtype()).to(t.device()));
}

// A checkpoint holds finite numbers only: training stops before a non-finite value reaches the
// weights, so a NaN or an infinity here means the file was damaged or edited.
void require_finite(const NamedTensors& tensors, const std::string& what) {
  for (const auto& [name, t] : tensors) {
    if (!is_floating(t.dtype())) continue;
    const std::vector<double> v = t.to_vector<double>();
    for (size_t i = 0; i < v.size(); ++i)
      MONET_CHECK(std::isfinite(v[i]),
                  "{}: tensor '{}' holds {} at element {}; the checkpoint is damaged", what, name,
                  v[i], i);
  }
}

// The model section of the config the weights were written with, recorded in
// model.safetensors's metadata: an edited config.json (heads, activation, norm_eps: changes that
// keep every shape) is noticed instead of silently computing another function.
constexpr const char* kModelConfigKey = "model_config";

// "model.heads: 2 when saved, 4 in config.json" for every leaf that differs.
void diff_json(const json& saved, const json& now, const std::string& path,
               std::vector<std::string>& out) {
  if (saved.is_object() && now.is_object()) {
    for (const auto& [k, v] : saved.items())
      diff_json(v, now.contains(k) ? now[k] : json(), path + "." + k, out);
    for (const auto& [k, v] : now.items())
      if (!saved.contains(k)) diff_json(json(), v, path + "." + k, out);
  } else if (saved != now) {
    out.push_back(fmt::format("{}: {} when saved, {} in config.json", path.substr(1),
                              saved.is_null() ? "absent" : saved.dump(),
                              now.is_null() ? "absent" : now.dump()));
  }
}

}  // namespace

void save_checkpoint(const fs::path& run_dir, const nn::Module& model,
                     const nn::Optimizer* optimizer, const Config& config,
                     const TrainState& state) {
  const nn::NamedTensors moments = optimizer ? optimizer->state_dict() : nn::NamedTensors{};
  save_checkpoint(run_dir, model_state(model), optimizer ? &moments : nullptr, config, state);
}

void save_checkpoint(const fs::path& run_dir, const nn::NamedTensors& model_tensors,
                     const nn::NamedTensors* optimizer_state, const Config& config,
                     const TrainState& state) {
  const fs::path tmp = run_dir / "checkpoint.tmp", live = run_dir / "checkpoint",
                 prev = run_dir / "checkpoint.prev";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  const Metadata meta{{"step", std::to_string(state.step)}, {"format", "monet-cpp"}};
  Metadata model_meta = meta;
  model_meta[kModelConfigKey] = json{{"model", to_json(config)["model"]}}.dump();
  save_safetensors(tmp / "model.safetensors", model_tensors, model_meta);
  if (optimizer_state) save_safetensors(tmp / "optimizer.safetensors", *optimizer_state, meta);
  save_config(tmp / "config.json", config);
  write_file_atomic(tmp / "state.json", state_to_json(state).dump(2) + "\n");
  fs::remove_all(prev);
  if (fs::exists(live)) fs::rename(live, prev);
  fs::rename(tmp, live);
  fs::remove_all(prev);
}

void load_model_weights(const fs::path& dir, nn::Module& model, const ModelConfig* config) {
  const std::string file = (dir / "model.safetensors").string();
  Safetensors st = load_safetensors(dir / "model.safetensors");
  require_finite(st.tensors, file);
  // Shapes first (the more concrete message), then what shapes cannot show.
  copy_state(model_state(model), st.tensors, file);
  auto it = st.metadata.find(kModelConfigKey);
  if (config && it != st.metadata.end()) {  // checkpoints before the record have none
    const json saved = parse_json_strict(it->second, file + " metadata");
    Config now;
    now.model = *config;
    // Through parse_config, so keys added since (model.kv_heads, model.rope_theta) take their
    // defaults on both sides.
    json saved_model;
    try {
      saved_model =
          to_json(parse_config(json{{"model", saved.value("model", json::object())}}))["model"];
    } catch (const Error& e) {
      throw Error(fmt::format("{}: the recorded model config is invalid: {}", file, e.what()));
    }
    std::vector<std::string> diffs;
    diff_json(saved_model, to_json(now)["model"], ".model", diffs);
    MONET_CHECK(diffs.empty(),
                "{}: the weights were saved with another model config ({}); config.json was "
                "edited, or belongs to another run",
                file, fmt::join(diffs, "; "));
  }
}

void load_optimizer_state(const fs::path& dir, nn::Optimizer& optimizer) {
  Safetensors st = load_safetensors(dir / "optimizer.safetensors");
  require_finite(st.tensors, (dir / "optimizer.safetensors").string());
  optimizer.load_state_dict(st.tensors);
}

namespace {

// A xoshiro256** state: four 64-bit words, not all zero (a state the generator cannot leave).
std::array<uint64_t, 4> read_rng(const json& j, const std::string& key) {
  MONET_CHECK(j.is_array() && j.size() == 4, "'{}' must be an array of 4 integers, got {}", key,
              j.dump());
  std::array<uint64_t, 4> s{};
  for (size_t i = 0; i < 4; ++i) {
    MONET_CHECK(j[i].is_number_unsigned(), "'{}' must hold integers in [0, 2^64), got {}", key,
                j[i].dump());
    s[i] = j[i].get<uint64_t>();
  }
  MONET_CHECK(s != (std::array<uint64_t, 4>{}),
              "'{}' is all zeros, a state the generator cannot leave", key);
  return s;
}

int64_t read_count(const json& j, const std::string& key) {
  MONET_CHECK(j.is_number_unsigned() && j.get<uint64_t>() <= INT64_MAX,
              "'{}' must be an integer in [0, 2^63), got {}", key, j.dump());
  return j.get<int64_t>();
}

}  // namespace

TrainState parse_train_state(const std::string& text, const std::string& where) {
  try {
    const json j = parse_json_strict(text, where);
    MONET_CHECK(j.is_object() && j.contains("step") && j.contains("batcher") && j.contains("rng") &&
                    j["batcher"].is_object() && j["batcher"].contains("rng") &&
                    j["batcher"].contains("batches"),
                "must be an object with step, batcher (rng, batches) and rng");
    TrainState s;
    s.step = read_count(j["step"], "step");
    s.batcher.rng = read_rng(j["batcher"]["rng"], "batcher.rng");
    s.batcher.batches = read_count(j["batcher"]["batches"], "batcher.batches");
    s.rng = read_rng(j["rng"], "rng");
    return s;
  } catch (const Error& e) {
    const std::string msg = e.what();
    if (msg.rfind(where, 0) == 0) throw;  // already names the file
    throw Error(fmt::format("{} is malformed: {}", where, msg));
  }
}

TrainState load_train_state(const fs::path& dir) {
  const fs::path p = dir / "state.json";
  return parse_train_state(read_file(p), fmt::format("checkpoint state '{}'", p.string()));
}

Config load_checkpoint_config(const fs::path& dir) {
  return load_config(dir / "config.json");
}

std::shared_ptr<nn::Transformer> load_model(const fs::path& path, Config* config, Device device,
                                            const std::function<void(const std::string&)>& note) {
  const fs::path dir = resolve_checkpoint(path);
  if (is_hf_checkpoint(dir)) {
    auto model = load_hf_model(dir, config, device, note);
    if (config) config->run.data = find_data(config->run.data, dir);
    return model;
  }
  Config c = load_checkpoint_config(dir);
  Generator gen(c.run.seed);
  auto model = build_model(c.model, gen, DType::F32, device);
  load_model_weights(dir, *model, &c.model);
  model->eval();
  if (config) *config = c;
  return model;
}

Config load_run_config(const fs::path& path) {
  const fs::path dir = resolve_checkpoint(path);
  if (!is_hf_checkpoint(dir)) return load_checkpoint_config(dir);  // load_config finds run.data
  const fs::path file = dir / "config.json";
  Config c = config_from_hf(parse_json_strict(read_file(file), file.string()),
                            fmt::format("Hugging Face config '{}'", file.string()));
  c.run.data = find_data(c.run.data, dir);
  return c;
}

std::unique_ptr<Tokenizer> load_tokenizer(const fs::path& path) {
  const fs::path file = resolve_checkpoint(path) / "tokenizer.model";
  if (fs::exists(file)) return std::make_unique<SentencePieceTokenizer>(file);
  return make_tokenizer("byte");
}

}  // namespace monet
