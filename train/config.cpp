#include "train/config.h"

#include <functional>
#include <map>
#include <set>
#include <variant>

#include "core/error.h"
#include "train/fileio.h"

namespace monet {
namespace {

using json = nlohmann::json;

// ---- typed reading of one value ----

std::string kind_of(const json& v) {
  return v.is_number_integer() ? "integer" : v.type_name();
}

void read_value(const json& v, const std::string& key, int64_t& out) {
  MONET_CHECK(v.is_number_integer(), "config key '{}' must be an integer, got {}", key, kind_of(v));
  MONET_CHECK(!v.is_number_unsigned() || v.get<uint64_t>() <= INT64_MAX,
              "config key '{}' is out of range, got {}", key, v.dump());
  out = v.get<int64_t>();
}
void read_value(const json& v, const std::string& key, uint64_t& out) {
  MONET_CHECK(v.is_number_integer(), "config key '{}' must be an integer, got {}", key, kind_of(v));
  MONET_CHECK(v.is_number_unsigned(), "config key '{}' must be non-negative, got {}", key,
              v.dump());
  out = v.get<uint64_t>();
}
void read_value(const json& v, const std::string& key, double& out) {
  MONET_CHECK(v.is_number(), "config key '{}' must be a number, got {}", key, kind_of(v));
  out = v.get<double>();
}
void read_value(const json& v, const std::string& key, std::string& out) {
  MONET_CHECK(v.is_string(), "config key '{}' must be a string, got {}", key, kind_of(v));
  out = v.get<std::string>();
}

// ---- the plain sections: one table of (key, member) per struct drives parse and to_json ----

template <class S>
using Member = std::variant<int64_t S::*, uint64_t S::*, double S::*, std::string S::*>;
template <class S>
struct Field {
  std::string key;
  Member<S> member;
};

const std::vector<Field<ModelConfig>>& model_fields() {
  static const std::vector<Field<ModelConfig>> f = {
      {"vocab", &ModelConfig::vocab},     {"d", &ModelConfig::d},
      {"layers", &ModelConfig::layers},   {"heads", &ModelConfig::heads},
      {"context", &ModelConfig::context}, {"norm_eps", &ModelConfig::norm_eps}};
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
      {"seed", &RunConfig::seed},
      {"eval_every", &RunConfig::eval_every},
      {"eval_windows", &RunConfig::eval_windows},
      {"log_every", &RunConfig::log_every},
      {"checkpoint_every", &RunConfig::checkpoint_every},
      {"device", &RunConfig::device},
      {"data", &RunConfig::data}};
  return f;
}

void require_object(const json& j, const std::string& key) {
  MONET_CHECK(j.is_object(), "config key '{}' must be an object, got {}", key, kind_of(j));
}

// Reads the table's keys present in `j`; any other key (but `nested`) is an error.
template <class S>
void read_section(const json& j, const std::string& path, const std::vector<Field<S>>& fields,
                  S& out, const std::set<std::string>& nested = {}) {
  require_object(j, path);
  for (const auto& [k, v] : j.items()) {
    bool known = nested.count(k) > 0;
    for (const Field<S>& f : fields) known = known || f.key == k;
    MONET_CHECK(known, "unknown config key '{}.{}'", path, k);
  }
  for (const Field<S>& f : fields) {
    auto it = j.find(f.key);
    if (it == j.end()) continue;
    std::visit([&](auto m) { read_value(*it, path + "." + f.key, out.*m); }, f.member);
  }
}

template <class S>
json write_section(const S& s, const std::vector<Field<S>>& fields) {
  json j = json::object();
  for (const Field<S>& f : fields) std::visit([&](auto m) { j[f.key] = s.*m; }, f.member);
  return j;
}

// ---- value rules ----

template <class T>
void require(bool ok, std::string_view key, std::string_view rule, const T& got) {
  MONET_CHECK(ok, "config key '{}' must be {}, got {}", key, rule, got);
}
void require_one_of(const std::string& v, std::string_view key,
                    const std::vector<std::string>& choices) {
  bool ok = false;
  for (const std::string& c : choices) ok = ok || c == v;
  require(ok, key, fmt::format("one of {}", fmt::join(choices, "|")), fmt::format("'{}'", v));
}

// ---- the FFN: one row of keys per kind; later kinds (smoe, peer, monet_hd, monet_vd) add rows
// ----

enum class Type { Integer, Number, String };

struct FfnKey {
  std::string key;
  Type type;
  std::function<json(const ModelConfig&)> fallback;  // the default, which may depend on the model
  std::function<void(const json&, const std::string&)> check;  // (value, dotted key)
};

auto positive_int() {
  return [](const json& v, const std::string& key) {
    require(v.get<int64_t>() > 0, key, "positive", v.dump());
  };
}
auto one_of(std::vector<std::string> choices) {
  return [choices](const json& v, const std::string& key) {
    require_one_of(v.get<std::string>(), key, choices);
  };
}

// MONET (moe-math.md §4): H routing heads, √N sub-experts per router (N = √N² experts), expert
// width m ("dim"), k kept sub-experts per head, G layers per routing group, λ of the aux losses.
// The default √N keeps the paper's √N·m = 4d at m = 8.
std::vector<FfnKey> monet_keys() {
  auto positive_number = [](const json& v, const std::string& key) {
    require(v.get<double>() >= 0, key, "non-negative", v.dump());
  };
  return {{"heads", Type::Integer, [](const ModelConfig&) { return json(4); }, positive_int()},
          {"sqrt_n", Type::Integer, [](const ModelConfig& m) { return json(m.d / 2); }, positive_int()},
          {"dim", Type::Integer, [](const ModelConfig&) { return json(8); }, positive_int()},
          {"topk", Type::Integer, [](const ModelConfig&) { return json(8); }, positive_int()},
          {"group", Type::Integer, [](const ModelConfig&) { return json(4); }, positive_int()},
          {"aux_weight", Type::Number, [](const ModelConfig&) { return json(1e-3); }, positive_number}};
}

// PEER (moe-math.md §3): √N sub-keys per half (N = √N² singleton experts), h heads, k experts per
// head, query width d_q, σ of the experts, score normaliser, query BatchNorm (0/1).
std::vector<FfnKey> peer_keys() {
  auto flag = [](const json& v, const std::string& key) {
    require(v.get<int64_t>() == 0 || v.get<int64_t>() == 1, key, "0 or 1", v.dump());
  };
  return {{"sqrt_n", Type::Integer, [](const ModelConfig& m) { return json(m.d / 2); }, positive_int()},
          {"heads", Type::Integer, [](const ModelConfig&) { return json(8); }, positive_int()},
          {"topk", Type::Integer, [](const ModelConfig&) { return json(16); }, positive_int()},
          {"d_query", Type::Integer, [](const ModelConfig& m) { return json(m.d / 2); }, positive_int()},
          {"activation", Type::String, [](const ModelConfig&) { return json("gelu"); }, one_of({"gelu", "relu"})},
          {"score", Type::String, [](const ModelConfig&) { return json("softmax"); }, one_of({"softmax", "sigmoid"})},
          {"query_batchnorm", Type::Integer, [](const ModelConfig&) { return json(1); }, flag}};
}

// SMoE (moe-math.md §2): E experts of width m ("dim", 0: 4·d/k, the active width of a 4d MLP),
// k chosen per token ("topk", 0: the gating's own), the gating, the capacity factor (0: dropless),
// the weights of the balance, z, importance and load losses, router jitter, expert activation.
std::vector<FfnKey> smoe_keys() {
  auto at_least = [](double lo) {
    return [lo](const json& v, const std::string& key) {
      require(v.get<double>() >= lo, key, fmt::format(">= {}", lo), v.dump());
    };
  };
  auto number = [](double v) { return [v](const ModelConfig&) { return json(v); }; };
  return {{"experts", Type::Integer, [](const ModelConfig&) { return json(8); }, positive_int()},
          {"dim", Type::Integer, [](const ModelConfig&) { return json(0); }, at_least(0)},
          {"topk", Type::Integer, [](const ModelConfig&) { return json(0); }, at_least(0)},
          {"gating", Type::String, [](const ModelConfig&) { return json("switch"); },
           one_of({"softmax", "noisy_topk", "switch", "gshard"})},
          {"capacity_factor", Type::Number, number(0.0), at_least(0)},
          {"balance_weight", Type::Number, number(1e-2), at_least(0)},
          {"z_weight", Type::Number, number(1e-3), at_least(0)},
          {"importance_weight", Type::Number, number(1e-2), at_least(0)},
          {"load_weight", Type::Number, number(1e-2), at_least(0)},
          {"jitter", Type::Number, number(0.0), at_least(0)},
          {"activation", Type::String, [](const ModelConfig&) { return json("relu2"); },
           one_of({"relu2", "gelu"})}};
}

const std::map<std::string, std::vector<FfnKey>>& ffn_kinds() {
  static const std::map<std::string, std::vector<FfnKey>> kinds = {
      {"dense",
       {{"activation", Type::String, [](const ModelConfig&) { return json("relu2"); },
         one_of({"relu2", "gelu", "swiglu"})},
        {"hidden", Type::Integer, [](const ModelConfig& m) { return json(4 * m.d); },
         positive_int()}}},
      {"monet_hd", monet_keys()},
      {"peer", peer_keys()},
      {"smoe", smoe_keys()},
      {"monet_vd", monet_keys()},
  };
  return kinds;
}

bool is_ffn_key(const std::string& key) {
  for (const auto& [kind, keys] : ffn_kinds()) {
    for (const FfnKey& k : keys) {
      if (k.key == key) return true;
    }
  }
  return false;
}

FfnConfig parse_ffn(const json& j, const ModelConfig& model) {
  const std::string path = "model.ffn";
  require_object(j, path);
  FfnConfig f;
  if (j.contains("kind")) read_value(j["kind"], path + ".kind", f.kind);
  std::vector<std::string> names;
  for (const auto& [name, keys] : ffn_kinds()) names.push_back(name);
  require_one_of(f.kind, path + ".kind", names);
  const std::vector<FfnKey>& keys = ffn_kinds().at(f.kind);

  for (const auto& [k, v] : j.items()) {
    bool mine = k == "kind";
    for (const FfnKey& key : keys) mine = mine || key.key == k;
    MONET_CHECK(mine || is_ffn_key(k), "unknown config key '{}.{}'", path, k);
    MONET_CHECK(mine, "config key '{}.{}' does not apply to ffn kind '{}'", path, k, f.kind);
  }
  for (const FfnKey& key : keys) {
    const std::string dotted = path + "." + key.key;
    const json v = j.contains(key.key) ? j[key.key] : key.fallback(model);
    json& out = f.params[key.key];
    if (key.type == Type::Integer) {
      out = int64_t{};
      read_value(v, dotted, out.get_ref<int64_t&>());
    } else if (key.type == Type::Number) {
      out = 0.0;
      read_value(v, dotted, out.get_ref<double&>());
    } else {
      out = std::string();
      read_value(v, dotted, out.get_ref<std::string&>());
    }
    if (key.check) key.check(out, dotted);
  }
  return f;
}

void validate(const Config& c) {
  const ModelConfig& m = c.model;
  require(m.vocab > 0, "model.vocab", "positive", m.vocab);
  require(m.d > 0, "model.d", "positive", m.d);
  require(m.layers > 0, "model.layers", "positive", m.layers);
  require(m.heads > 0, "model.heads", "positive", m.heads);
  require(m.d % m.heads == 0, "model.heads", fmt::format("a divisor of model.d = {}", m.d),
          m.heads);
  require(m.context > 0, "model.context", "positive", m.context);
  require(m.norm_eps > 0, "model.norm_eps", "positive", m.norm_eps);

  const OptimConfig& o = c.optim;
  require_one_of(o.name, "optim.name", {"adamw", "sgd"});
  require(o.lr > 0, "optim.lr", "positive", o.lr);
  require(o.min_lr >= 0 && o.min_lr <= o.lr, "optim.min_lr", "in [0, optim.lr]", o.min_lr);
  require(o.weight_decay >= 0, "optim.weight_decay", "non-negative", o.weight_decay);
  require(o.beta1 >= 0 && o.beta1 < 1, "optim.beta1", "in [0, 1)", o.beta1);
  require(o.beta2 >= 0 && o.beta2 < 1, "optim.beta2", "in [0, 1)", o.beta2);
  require(o.eps > 0, "optim.eps", "positive", o.eps);
  require(o.warmup_steps >= 0, "optim.warmup_steps", "non-negative", o.warmup_steps);
  require(o.grad_clip >= 0, "optim.grad_clip", "non-negative (0 = off)", o.grad_clip);

  const RunConfig& r = c.run;
  require(r.steps > 0, "run.steps", "positive", r.steps);
  require(r.batch > 0, "run.batch", "positive", r.batch);
  require(o.warmup_steps < r.steps, "optim.warmup_steps", fmt::format("less than run.steps = {}", r.steps),
          o.warmup_steps);
  require(r.eval_every >= 0, "run.eval_every", "non-negative (0 = only at the end)", r.eval_every);
  require(r.eval_windows >= 0, "run.eval_windows", "non-negative (0 = all)", r.eval_windows);
  require(r.log_every > 0, "run.log_every", "positive", r.log_every);
  require(r.checkpoint_every >= 0, "run.checkpoint_every", "non-negative (0 = only at the end)",
          r.checkpoint_every);
  require_one_of(r.device, "run.device", {"cpu", "cuda"});
  require(!r.data.empty(), "run.data", "a folder", "''");
}

// Every dotted key the schema knows (sections included); ffn keys of any kind.
std::set<std::string> schema_keys() {
  std::set<std::string> keys = {"model", "optim", "run", "model.ffn", "model.ffn.kind"};
  for (const auto& f : model_fields()) keys.insert("model." + f.key);
  for (const auto& f : optim_fields()) keys.insert("optim." + f.key);
  for (const auto& f : run_fields()) keys.insert("run." + f.key);
  for (const auto& [kind, list] : ffn_kinds()) {
    for (const FfnKey& k : list) keys.insert("model.ffn." + k.key);
  }
  return keys;
}

}  // namespace

int64_t FfnConfig::get_int(const std::string& key) const {
  MONET_CHECK(params.contains(key) && params[key].is_number_integer(),
              "ffn kind '{}' has no integer key '{}'", kind, key);
  return params[key].get<int64_t>();
}
double FfnConfig::get_number(const std::string& key) const {
  MONET_CHECK(params.contains(key) && params[key].is_number(),
              "ffn kind '{}' has no number key '{}'", kind, key);
  return params[key].get<double>();
}
std::string FfnConfig::get_string(const std::string& key) const {
  MONET_CHECK(params.contains(key) && params[key].is_string(),
              "ffn kind '{}' has no string key '{}'", kind, key);
  return params[key].get<std::string>();
}

Config parse_config(const json& j) {
  MONET_CHECK(j.is_object(), "config must be a JSON object, got {}", kind_of(j));
  for (const auto& [k, v] : j.items()) {
    MONET_CHECK(k == "model" || k == "optim" || k == "run", "unknown config key '{}'", k);
  }
  Config c;
  const json empty = json::object();
  auto section = [&](const char* name) -> const json& {
    return j.contains(name) ? j[name] : empty;
  };
  read_section(section("model"), "model", model_fields(), c.model, {"ffn"});
  read_section(section("optim"), "optim", optim_fields(), c.optim);
  read_section(section("run"), "run", run_fields(), c.run);
  validate(c);  // before the ffn, whose defaults read model.d
  const json& model = section("model");
  c.model.ffn = parse_ffn(model.contains("ffn") ? model["ffn"] : empty, c.model);
  return c;
}

json to_json(const Config& c) {
  json ffn = c.model.ffn.params;
  ffn["kind"] = c.model.ffn.kind;
  json model = write_section(c.model, model_fields());
  model["ffn"] = ffn;
  return {{"model", model},
          {"optim", write_section(c.optim, optim_fields())},
          {"run", write_section(c.run, run_fields())}};
}

void apply_override(json& j, std::string_view assignment) {
  const size_t eq = assignment.find('=');
  MONET_CHECK(eq != std::string_view::npos && eq > 0, "override '{}' must be key=value",
              assignment);
  const std::string key(assignment.substr(0, eq));
  const std::string text(assignment.substr(eq + 1));
  MONET_CHECK(schema_keys().count(key) > 0, "unknown config key '{}'", key);
  json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) value = text;

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

Config load_config(const std::filesystem::path& path, const std::vector<std::string>& overrides) {
  const std::string text = read_file(path);
  try {
    json j = json::parse(text);
    for (const std::string& o : overrides) apply_override(j, o);
    return parse_config(j);
  } catch (const json::exception& e) {
    throw Error(fmt::format("config '{}': invalid JSON: {}", path.string(), e.what()));
  } catch (const Error& e) {
    throw Error(fmt::format("config '{}': {}", path.string(), e.what()));
  }
}

void save_config(const std::filesystem::path& path, const Config& c) {
  write_file_atomic(path, to_json(c).dump(2) + "\n");
}

}  // namespace monet
