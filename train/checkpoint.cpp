#include "train/checkpoint.h"

#include <nlohmann/json.hpp>
#include <set>

#include "core/autograd.h"
#include "core/ops.h"
#include "train/model.h"
#include "train/safetensors.h"
#include "util/fileio.h"
#include "util/json_value.h"

namespace monet {

namespace fs = std::filesystem;
using nlohmann::json;

fs::path resolve_checkpoint(const fs::path& path) {
  MONET_CHECK(fs::exists(path), "checkpoint '{}' does not exist", path.string());
  if (fs::exists(path / "model.safetensors")) return path;
  for (const char* sub : {"checkpoint", "checkpoint.prev"})
    if (fs::exists(path / sub / "model.safetensors")) return path / sub;
  MONET_CHECK(false, "'{}' holds no checkpoint (no model.safetensors in it or in checkpoint/)",
              path.string());
  return path;
}

namespace {

json state_to_json(const TrainState& s) {
  return {{"step", s.step},
          {"batcher", {{"rng", s.batcher.rng}, {"batches", s.batcher.batches}}},
          {"rng", s.rng},
          {"format", "monet-cpp train state 1"}};
}

// Copy `src` tensors into same-named `dst` tensors, requiring the same names and shapes.
void copy_named(const nn::NamedTensors& dst, const NamedTensors& src, const std::string& what) {
  const std::map<std::string, Tensor> by_name(src.begin(), src.end());
  std::set<std::string> wanted;
  for (const auto& [name, t] : dst) {
    wanted.insert(name);
    auto it = by_name.find(name);
    MONET_CHECK(it != by_name.end(), "{}: tensor '{}' is missing", what, name);
    MONET_CHECK(it->second.shape() == t.shape(),
                "{}: tensor '{}' has shape {} in the checkpoint but {} in the model built from its "
                "config", what, name, shape_str(it->second.shape()), shape_str(t.shape()));
  }
  for (const auto& [name, t] : src)
    MONET_CHECK(wanted.count(name), "{}: unexpected tensor '{}'", what, name);
  NoGradGuard ng;
  for (const auto& [name, t] : dst) copy_(t, by_name.at(name).to(t.dtype()).to(t.device()));
}

}  // namespace

void save_checkpoint(const fs::path& run_dir, const nn::Module& model,
                     const nn::Optimizer* optimizer, const Config& config, const TrainState& state) {
  const fs::path tmp = run_dir / "checkpoint.tmp", live = run_dir / "checkpoint",
                 prev = run_dir / "checkpoint.prev";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  const Metadata meta{{"step", std::to_string(state.step)}, {"format", "monet-cpp"}};
  save_safetensors(tmp / "model.safetensors", model_state(model), meta);
  if (optimizer) save_safetensors(tmp / "optimizer.safetensors", optimizer->state_dict(), meta);
  save_config(tmp / "config.json", config);
  write_file_atomic(tmp / "state.json", state_to_json(state).dump(2) + "\n");
  fs::remove_all(prev);
  if (fs::exists(live)) fs::rename(live, prev);
  fs::rename(tmp, live);
  fs::remove_all(prev);
}

void load_model_weights(const fs::path& dir, nn::Module& model) {
  Safetensors st = load_safetensors(dir / "model.safetensors");
  copy_named(model_state(model), st.tensors, (dir / "model.safetensors").string());
}

void load_optimizer_state(const fs::path& dir, nn::Optimizer& optimizer) {
  Safetensors st = load_safetensors(dir / "optimizer.safetensors");
  optimizer.load_state_dict(st.tensors);
}

namespace {

// state.json holds integers only, as state_to_json writes them. nlohmann's get<integer>() of a
// floating-point value is a plain cast: undefined behaviour out of the integer's range ("step":
// 1e300, found by fuzz/fuzz_state.cpp) and a silent truncation within it, so both are refused.
template <class T>
T state_integer(const json& v, const std::string& key) {
  MONET_CHECK(v.is_number_integer(), "'{}' must be an integer, got {}", key, json_kind(v));
  return v.get<T>();
}

std::array<uint64_t, 4> state_rng(const json& v, const std::string& key) {
  MONET_CHECK(v.is_array() && v.size() == 4, "'{}' must be a list of 4 integers, got {}", key,
              json_kind(v));
  std::array<uint64_t, 4> r{};
  for (size_t i = 0; i < r.size(); ++i)
    r[i] = state_integer<uint64_t>(v[i], fmt::format("{}[{}]", key, i));
  return r;
}

}  // namespace

TrainState parse_train_state(const std::string& text, const std::string& source) {
  TrainState s;
  try {
    json j = parse_json(text);
    s.step = state_integer<int64_t>(j.at("step"), "step");
    s.batcher.rng = state_rng(j.at("batcher").at("rng"), "batcher.rng");
    s.batcher.batches = state_integer<int64_t>(j.at("batcher").at("batches"), "batcher.batches");
    s.rng = state_rng(j.at("rng"), "rng");
  } catch (const json::exception& e) {
    throw Error(fmt::format("checkpoint state '{}' is malformed: {}", source, e.what()));
  } catch (const Error& e) {
    throw Error(fmt::format("checkpoint state '{}' is malformed: {}", source, e.what()));
  }
  return s;
}

TrainState load_train_state(const fs::path& dir) {
  const fs::path p = dir / "state.json";
  return parse_train_state(read_file(p), p.string());
}

Config load_checkpoint_config(const fs::path& dir) { return load_config(dir / "config.json"); }

std::shared_ptr<nn::Transformer> load_model(const fs::path& path, Config* config, Device device) {
  const fs::path dir = resolve_checkpoint(path);
  Config c = load_checkpoint_config(dir);
  Generator gen(c.run.seed);
  auto model = build_model(c.model, gen, DType::F32, device);
  load_model_weights(dir, *model);
  model->eval();
  if (config) *config = c;
  return model;
}

}  // namespace monet
