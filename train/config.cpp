#include "train/config.h"

#include <functional>
#include <map>
#include <set>
#include <variant>

#include "core/error.h"
#include "monet/registry.h"
#include "util/fileio.h"
#include "util/json_value.h"
#include "util/suggest.h"

namespace monet {

GemmMode gemm_mode_of(const RunConfig& r) {
  const GemmBackend b = r.gemm.value_or(default_gemm_backend());
  check_built(b, "config key 'run.gemm'");
  return {b, r.precision};
}

namespace {

using json = nlohmann::json;

// ---- the plain sections: one table of (key, member) per struct drives parse and to_json ----

template <class S>
using Member = std::variant<int64_t S::*, uint64_t S::*, double S::*, std::string S::*, bool S::*,
                            DeviceType S::*, std::optional<GemmBackend> S::*, Precision S::*,
                            nn::OptimizerKind S::*>;
template <class S>
struct Field {
  std::string key;
  Member<S> member;
};

const std::vector<Field<ModelConfig>>& model_fields() {
  static const std::vector<Field<ModelConfig>> f = {
      {"vocab", &ModelConfig::vocab},       {"d", &ModelConfig::d},
      {"layers", &ModelConfig::layers},     {"heads", &ModelConfig::heads},
      {"context", &ModelConfig::context},   {"norm_eps", &ModelConfig::norm_eps},
      {"kv_heads", &ModelConfig::kv_heads}, {"rope_theta", &ModelConfig::rope_theta}};
  return f;
}
const std::vector<Field<OptimConfig>>& optim_fields() {
  static const std::vector<Field<OptimConfig>> f = {{"name", &OptimConfig::name},
                                                    {"lr", &OptimConfig::lr},
                                                    {"min_lr", &OptimConfig::min_lr},
                                                    {"weight_decay", &OptimConfig::weight_decay},
                                                    {"beta1", &OptimConfig::beta1},
                                                    {"beta2", &OptimConfig::beta2},
                                                    {"eps", &OptimConfig::eps},
                                                    {"warmup_steps", &OptimConfig::warmup_steps},
                                                    {"grad_clip", &OptimConfig::grad_clip}};
  return f;
}
const std::vector<Field<RunConfig>>& run_fields() {
  static const std::vector<Field<RunConfig>> f = {
      {"steps", &RunConfig::steps},
      {"batch", &RunConfig::batch},
      {"accumulate", &RunConfig::accumulate},
      {"seed", &RunConfig::seed},
      {"eval_every", &RunConfig::eval_every},
      {"eval_windows", &RunConfig::eval_windows},
      {"log_every", &RunConfig::log_every},
      {"checkpoint_every", &RunConfig::checkpoint_every},
      {"device", &RunConfig::device},
      {"data", &RunConfig::data},
      {"gemm", &RunConfig::gemm},
      {"precision", &RunConfig::precision},
      {"expert_parallel", &RunConfig::expert_parallel}};
  return f;
}

const std::vector<Field<FinetuneConfig>>& finetune_fields() {
  static const std::vector<Field<FinetuneConfig>> f = {{"init", &FinetuneConfig::init},
                                                       {"freeze", &FinetuneConfig::freeze},
                                                       {"aux", &FinetuneConfig::aux},
                                                       {"families", &FinetuneConfig::families}};
  return f;
}

std::set<std::string> schema_keys();

// "unknown config key 'model.dd' (did you mean 'model.d'?)"
[[noreturn]] void unknown_key(const std::string& dotted) {
  const std::set<std::string> keys = schema_keys();
  throw Error(fmt::format("unknown config key '{}'{}", dotted,
                          did_you_mean(dotted, {keys.begin(), keys.end()})));
}

void require_object(const json& j, const std::string& key) {
  MONET_CHECK(j.is_object(), "config key '{}' must be an object, got {}", key, json_kind(j));
}

// ---- the enum settings: read and written by the names of their tables ----

template <class E>
E read_name(const json& v, const std::string& key, const NameTable<E>& table,
            std::vector<std::string> choices = {}) {
  std::string name;
  read_json_value(v, key, name);
  if (std::optional<E> e = table.find(name)) return *e;
  for (const std::string& n : table.names()) choices.push_back(n);
  throw Error(fmt::format("config key '{}' must be one of {}, got '{}'", key,
                          fmt::join(choices, "|"), name));
}
void read_setting(const json& v, const std::string& key, DeviceType& out) {
  out = read_name(v, key, device_types());
}
void read_setting(const json& v, const std::string& key, Precision& out) {
  out = read_name(v, key, precisions());
}
void read_setting(const json& v, const std::string& key, nn::OptimizerKind& out) {
  out = read_name(v, key, nn::optimizer_kinds());
}
void read_setting(const json& v, const std::string& key, std::optional<GemmBackend>& out) {
  if (v.is_string() && v.get<std::string>() == "auto")
    out.reset();
  else
    out = read_name(v, key, gemm_backends(), {"auto"});
}
template <class T>
void read_setting(const json& v, const std::string& key, T& out) {
  read_json_value(v, key, out);
}

json setting_json(DeviceType v) {
  return device_types().name(v);
}
json setting_json(Precision v) {
  return precisions().name(v);
}
json setting_json(nn::OptimizerKind v) {
  return nn::optimizer_kinds().name(v);
}
json setting_json(const std::optional<GemmBackend>& v) {
  return v ? gemm_backends().name(*v) : "auto";
}
template <class T>
json setting_json(const T& v) {
  return v;
}

// Reads the table's keys present in `j`; any other key (but `nested`) is an error.
template <class S>
void read_section(const json& j, const std::string& path, const std::vector<Field<S>>& fields,
                  S& out, const std::set<std::string>& nested = {}) {
  require_object(j, path);
  for (const auto& [k, v] : j.items()) {
    bool known = nested.count(k) > 0;
    for (const Field<S>& f : fields) known = known || f.key == k;
    if (!known) unknown_key(path + "." + k);
  }
  for (const Field<S>& f : fields) {
    auto it = j.find(f.key);
    if (it == j.end()) continue;
    std::visit([&](auto m) { read_setting(*it, path + "." + f.key, out.*m); }, f.member);
  }
}

template <class S>
json write_section(const S& s, const std::vector<Field<S>>& fields) {
  json j = json::object();
  for (const Field<S>& f : fields)
    std::visit([&](auto m) { j[f.key] = setting_json(s.*m); }, f.member);
  return j;
}

// ---- the FFN: the keys of each kind come from its registry row (monet/registry.h) ----

bool is_ffn_key(const std::string& key) {
  for (const moe::FfnKind* kind : moe::ffn_kinds())
    for (const moe::FieldInfo& f : kind->fields)
      if (f.key == key) return true;
  return false;
}

FfnConfig parse_ffn(const json& j, const ModelConfig& model) {
  const std::string path = "model.ffn";
  require_object(j, path);
  FfnConfig f;
  std::string name = f.kind->name;
  if (j.contains("kind")) read_json_value(j["kind"], path + ".kind", name);
  f.kind = &moe::ffn_kind(name);
  const moe::FfnKind& kind = *f.kind;
  json given = json::object();
  for (const auto& [k, v] : j.items()) {
    if (k == "kind") continue;
    bool mine = false;
    for (const moe::FieldInfo& field : kind.fields) mine = mine || field.key == k;
    if (!mine && !is_ffn_key(k)) unknown_key(path + "." + k);
    MONET_CHECK(mine, "config key '{}.{}' does not apply to ffn kind '{}'", path, k, name);
    given[k] = v;
  }
  f.params = kind.parse(given, model.d, path);
  return f;
}

void validate(const Config& c) {
  const ModelConfig& m = c.model;
  require_config(m.vocab > 0, "model.vocab", "positive", m.vocab);
  require_config(m.d > 0, "model.d", "positive", m.d);
  require_config(m.layers > 0, "model.layers", "positive", m.layers);
  require_config(m.heads > 0, "model.heads", "positive", m.heads);
  require_config(m.d % m.heads == 0, "model.heads", fmt::format("a divisor of model.d = {}", m.d),
                 m.heads);
  require_config(m.context > 0, "model.context", "positive", m.context);
  require_config(m.norm_eps > 0, "model.norm_eps", "positive", m.norm_eps);
  require_config(m.kv_heads >= 0 && (m.kv_heads == 0 || m.heads % m.kv_heads == 0),
                 "model.kv_heads", fmt::format("0 or a divisor of model.heads = {}", m.heads),
                 m.kv_heads);
  require_config(m.rope_theta > 0, "model.rope_theta", "positive", m.rope_theta);

  const OptimConfig& o = c.optim;
  require_config(o.lr > 0, "optim.lr", "positive", o.lr);
  require_config(o.min_lr >= 0 && o.min_lr <= o.lr, "optim.min_lr", "in [0, optim.lr]", o.min_lr);
  require_config(o.weight_decay >= 0, "optim.weight_decay", "non-negative", o.weight_decay);
  require_config(o.beta1 >= 0 && o.beta1 < 1, "optim.beta1", "in [0, 1)", o.beta1);
  require_config(o.beta2 >= 0 && o.beta2 < 1, "optim.beta2", "in [0, 1)", o.beta2);
  require_config(o.eps > 0, "optim.eps", "positive", o.eps);
  require_config(o.warmup_steps >= 0, "optim.warmup_steps", "non-negative", o.warmup_steps);
  require_config(o.grad_clip >= 0, "optim.grad_clip", "non-negative (0 = off)", o.grad_clip);

  const RunConfig& r = c.run;
  require_config(r.steps > 0, "run.steps", "positive", r.steps);
  require_config(r.batch > 0, "run.batch", "positive", r.batch);
  require_config(r.accumulate > 0, "run.accumulate", "positive", r.accumulate);
  require_config(r.eval_every >= 0, "run.eval_every", "non-negative (0 = only at the end)",
                 r.eval_every);
  require_config(r.eval_windows >= 0, "run.eval_windows", "non-negative (0 = all)", r.eval_windows);
  require_config(r.log_every > 0, "run.log_every", "positive", r.log_every);
  require_config(r.checkpoint_every >= 0, "run.checkpoint_every",
                 "non-negative (0 = only at the end)", r.checkpoint_every);
  (void)gemm_mode_of(r);  // "onednn" in a build without it
  MONET_CHECK(r.precision == Precision::F32 || r.device == DeviceType::CPU,
              "config key 'run.precision' = 'bf16' runs on the CPU only (the CUDA backend "
              "multiplies in fp32): set run.precision=fp32 for run.device={}",
              device_types().name(r.device));
  require_config(!r.data.empty(), "run.data", "a folder", "''");
  (void)moe::parse_freeze(c.finetune.freeze);
}

// Every dotted key the schema knows (sections included); ffn keys of any kind.
std::set<std::string> schema_keys() {
  std::set<std::string> keys = {"model", "optim", "run", "finetune", "model.ffn", "model.ffn.kind"};
  for (const auto& f : model_fields()) keys.insert("model." + f.key);
  for (const auto& f : optim_fields()) keys.insert("optim." + f.key);
  for (const auto& f : run_fields()) keys.insert("run." + f.key);
  for (const auto& f : finetune_fields()) keys.insert("finetune." + f.key);
  for (const moe::FfnKind* kind : moe::ffn_kinds())
    for (const moe::FieldInfo& f : kind->fields) keys.insert("model.ffn." + f.key);
  return keys;
}

}  // namespace

Config parse_config(const json& j) {
  MONET_CHECK(j.is_object(), "config must be a JSON object, got {}", json_kind(j));
  for (const auto& [k, v] : j.items()) {
    if (k != "model" && k != "optim" && k != "run" && k != "finetune") unknown_key(k);
  }
  Config c;
  const json empty = json::object();
  auto section = [&](const char* name) -> const json& {
    return j.contains(name) ? j[name] : empty;
  };
  read_section(section("model"), "model", model_fields(), c.model, {"ffn"});
  read_section(section("optim"), "optim", optim_fields(), c.optim);
  read_section(section("run"), "run", run_fields(), c.run);
  read_section(section("finetune"), "finetune", finetune_fields(), c.finetune);
  validate(c);  // before the ffn, whose defaults read model.d
  const json& model = section("model");
  c.model.ffn = parse_ffn(model.contains("ffn") ? model["ffn"] : empty, c.model);
  return c;
}

json to_json(const Config& c) {
  json ffn = c.model.ffn.params;
  ffn["kind"] = c.model.ffn.kind->name;
  json model = write_section(c.model, model_fields());
  model["ffn"] = ffn;
  return {{"model", model},
          {"optim", write_section(c.optim, optim_fields())},
          {"run", write_section(c.run, run_fields())},
          {"finetune", write_section(c.finetune, finetune_fields())}};
}

void apply_override(json& j, std::string_view assignment) {
  const size_t eq = assignment.find('=');
  MONET_CHECK(eq != std::string_view::npos && eq > 0, "override '{}' must be key=value",
              assignment);
  const std::string key(assignment.substr(0, eq));
  const std::string text(assignment.substr(eq + 1));
  if (schema_keys().count(key) == 0) unknown_key(key);
  json value;
  try {
    value = parse_json(text, /*allow_exceptions=*/false);
  } catch (const Error& e) {  // nested too deep
    throw Error(fmt::format("config key '{}': {}", key, e.what()));
  }
  if (value.is_discarded()) {
    value = text;
    // JSON strings are UTF-8: a value in another encoding (a Latin-1 path, found by
    // fuzz/fuzz_config.cpp) was taken here and only failed in save_config, whose dump() threw
    // nlohmann's type_error at the start of training, naming no key.
    try {
      (void)value.dump();
    } catch (const json::type_error&) {
      throw Error(fmt::format("config key '{}' must be valid UTF-8 text", key));
    }
  }

  if (j.is_null()) j = json::object();
  require_object(j, "<root>");
  json* node = &j;
  std::string path;
  for (size_t start = 0;;) {
    const size_t dot = key.find('.', start);
    const std::string part = key.substr(start, dot == std::string::npos ? dot : dot - start);
    if (dot == std::string::npos) {
      (*node)[part] = value;
      return;
    }
    path += (path.empty() ? "" : ".") + part;
    if (!node->contains(part)) (*node)[part] = json::object();
    node = &(*node)[part];
    require_object(*node, path);
    start = dot + 1;
  }
}

Config parse_config_text(std::string_view text, const std::vector<std::string>& overrides,
                         const std::string& source) {
  const std::string where = fmt::format("config '{}'", source);
  json j = parse_json_strict(std::string(text), where);
  MONET_CHECK(j.is_object(), "{}: must be a JSON object, got {}", where, json_kind(j));
  for (const std::string& o : overrides) {
    try {
      apply_override(j, o);
    } catch (const Error& e) {
      throw Error(fmt::format("--set '{}': {}", o, e.what()));
    }
  }
  try {
    return parse_config(j);
  } catch (const Error& e) {
    // A value that came from --set is blamed on the --set that gave it.
    const std::string msg = e.what();
    for (const std::string& o : overrides) {
      const std::string key = o.substr(0, o.find('='));
      if (msg.find("'" + key + "'") != std::string::npos ||
          msg.find("'" + key + ".") != std::string::npos)
        throw Error(fmt::format("--set '{}': {}", o, msg));
    }
    throw Error(fmt::format("{}: {}", where, msg));
  }
}

Config load_config(const std::filesystem::path& path, const std::vector<std::string>& overrides) {
  Config c = parse_config_text(read_file(path), overrides, path.string());
  c.run.data = find_data(c.run.data, path.parent_path());
  return c;
}

std::string find_data(const std::string& data, const std::filesystem::path& near) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path p(data);
  if (data.empty() || p.is_absolute() || fs::exists(p, ec)) return data;
  for (fs::path dir = fs::absolute(near, ec); !ec && !dir.empty(); dir = dir.parent_path()) {
    if (fs::exists(dir / p, ec)) return (dir / p).lexically_normal().string();
    if (dir == dir.parent_path()) break;
  }
#ifdef MONET_SOURCE_TREE
  if (fs::exists(fs::path(MONET_SOURCE_TREE) / p, ec))
    return (fs::path(MONET_SOURCE_TREE) / p).string();
#endif
  return data;
}

void save_config(const std::filesystem::path& path, const Config& c) {
  write_file_atomic(path, to_json(c).dump(2) + "\n");
}

}  // namespace monet
