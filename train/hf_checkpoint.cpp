#include "train/hf_checkpoint.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "core/autograd.h"
#include "core/ops.h"
#include "train/checkpoint.h"
#include "train/model.h"
#include "train/safetensors.h"
#include "train/safetensors_index.h"
#include "util/fileio.h"
#include "util/json_value.h"
#include "util/text.h"

namespace monet {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The names that differ outside the layers, and inside one layer (after "layers.{i}.").
constexpr std::array<std::pair<const char*, const char*>, 3> kTop = {{
    {"embed.weight", "model.embed_tokens.weight"},
    {"norm.weight", "model.norm.weight"},
    {"lm_head.weight", "lm_head.weight"},
}};
constexpr std::array<std::pair<const char*, const char*>, 6> kLayer = {{
    {"norm1.weight", "input_layernorm.weight"},
    {"norm2.weight", "post_attention_layernorm.weight"},
    {"attn.wq.weight", "self_attn.q_proj.weight"},
    {"attn.wk.weight", "self_attn.k_proj.weight"},
    {"attn.wv.weight", "self_attn.v_proj.weight"},
    {"attn.wo.weight", "self_attn.o_proj.weight"},
}};
// Prefixes inside a layer: the router before the experts ("ffn.router." is also "ffn.").
constexpr std::array<std::pair<const char*, const char*>, 2> kLayerPrefix = {{
    {"ffn.router.", "router."},
    {"ffn.", "moe."},
}};

bool starts_with(const std::string& s, std::string_view p) {
  return s.rfind(p, 0) == 0;
}

// "layers.3.rest" -> {"layers.3.", "rest"} (with `prefix` = "layers."); false if not that shape.
bool split_layer(const std::string& name, std::string_view prefix, std::string& head,
                 std::string& rest) {
  if (!starts_with(name, prefix)) return false;
  const size_t dot = name.find('.', prefix.size());
  if (dot == std::string::npos || dot == prefix.size()) return false;
  for (size_t i = prefix.size(); i < dot; ++i)
    if (name[i] < '0' || name[i] > '9') return false;
  head = name.substr(0, dot + 1);
  rest = name.substr(dot + 1);
  return true;
}

// Translates `name` from one layout to the other; `forward` = ours -> HF.
std::string translate(const std::string& name, bool forward) {
  auto from = [&](const auto& p) { return std::string(forward ? p.first : p.second); };
  auto to = [&](const auto& p) { return std::string(forward ? p.second : p.first); };
  for (const auto& p : kTop)
    if (name == from(p)) return to(p);
  std::string head, rest;
  if (split_layer(name, forward ? "layers." : "model.layers.", head, rest)) {
    const std::string out_head = forward ? "model." + head : head.substr(6);  // drop "model."
    for (const auto& p : kLayer)
      if (rest == from(p)) return out_head + to(p);
    for (const auto& p : kLayerPrefix)
      if (starts_with(rest, from(p))) return out_head + to(p) + rest.substr(from(p).size());
  }
  throw Error(fmt::format("tensor '{}' has no counterpart in the {} layout", name,
                          forward ? "Hugging Face" : "monet-cpp"));
}

// An HF field: `key` of type `T`, or `fallback` when absent or null (MonetConfig's defaults).
template <class T>
T field(const json& hf, const char* key, const std::string& where, std::optional<T> fallback) {
  if (!hf.contains(key) || hf[key].is_null()) {
    MONET_CHECK(fallback.has_value(), "{}: no \"{}\" field", where, key);
    return *fallback;
  }
  try {
    return hf[key].get<T>();
  } catch (const json::exception&) {
    throw Error(fmt::format("{}: \"{}\" is {}, not a {}", where, key, hf[key].dump(),
                            std::is_same_v<T, std::string> ? "string"
                            : std::is_same_v<T, bool>      ? "boolean"
                                                           : "number"));
  }
}

// The kinds the layout holds: the rows with a moe_decompose value ("monet_hd", "monet_vd").
std::vector<std::string> hf_kind_names() {
  std::vector<std::string> out;
  for (const moe::FfnKind* k : moe::ffn_kinds())
    if (!k->hf_decompose.empty()) out.push_back(k->name);
  return out;
}

// The row whose moe_decompose value is `decompose`; an error naming the values otherwise.
const moe::FfnKind& kind_of_decompose(const std::string& decompose, const std::string& where) {
  std::vector<std::string> known;
  for (const moe::FfnKind* k : moe::ffn_kinds()) {
    if (k->hf_decompose.empty()) continue;
    if (k->hf_decompose == decompose) return *k;
    known.push_back(fmt::format("\"{}\" ({})", k->hf_decompose, k->label));
  }
  throw Error(fmt::format("{}: moe_decompose \"{}\" is none of {}", where, decompose,
                          fmt::join(known, ", ")));
}

}  // namespace

std::string hf_tensor_name(const std::string& ours) {
  return translate(ours, true);
}

std::string our_tensor_name(const std::string& hf) {
  std::string head, rest;
  if (split_layer(hf, "model.layers.", head, rest) &&
      (rest == "router.norm1.num_batches_tracked" || rest == "router.norm2.num_batches_tracked"))
    return "";
  return translate(hf, false);
}

bool is_hf_checkpoint(const fs::path& dir) {
  const fs::path file = dir / "config.json";
  if (!fs::is_regular_file(file)) return false;
  try {
    const json j = json::parse(read_file(file));
    return j.is_object() && j.contains("hidden_size") && !j.contains("model");
  } catch (const json::exception&) {
    return false;  // not JSON: load_config says so with the details
  }
}

Config config_from_hf(const json& hf, const std::string& where) {
  MONET_CHECK(hf.is_object(), "{}: not a JSON object", where);
  auto i64 = [&](const char* k, std::optional<int64_t> def = std::nullopt) {
    return field<int64_t>(hf, k, where, def);
  };
  auto num = [&](const char* k, double def) { return field<double>(hf, k, where, def); };
  auto str = [&](const char* k, std::optional<std::string> def = std::nullopt) {
    return field<std::string>(hf, k, where, std::move(def));
  };
  const std::string type = str("model_type", "monet");
  MONET_CHECK(type == "monet",
              "{}: model_type \"{}\" is not a MONET language model (monet-cpp reads "
              "model_type \"monet\"; the vision model's image tower is not supported)",
              where, type);
  const std::string act = str("hidden_act", "relu2");
  MONET_CHECK(act == "relu2", "{}: hidden_act \"{}\" is not supported (MONET's experts use relu2)",
              where, act);
  const moe::FfnKind& kind = kind_of_decompose(str("moe_decompose", "vertical"), where);
  MONET_CHECK(!hf.contains("rope_scaling") || hf["rope_scaling"].is_null(),
              "{}: rope_scaling {} is not supported (plain RoPE only)", where,
              hf.value("rope_scaling", json()).dump());
  MONET_CHECK(!field<bool>(hf, "attention_bias", where, false),
              "{}: attention_bias true is not supported (LLaMA attention has no biases)", where);

  const int64_t heads = i64("num_attention_heads");
  const int64_t kv = i64("num_key_value_heads", heads);
  json model = {{"vocab", i64("vocab_size", 32000)},
                {"d", i64("hidden_size")},
                {"layers", i64("num_hidden_layers")},
                {"heads", heads},
                {"kv_heads", kv == heads ? 0 : kv},
                {"context", i64("max_position_embeddings", 2048)},
                {"norm_eps", num("rms_norm_eps", 1e-6)},
                {"rope_theta", num("rope_theta", 10000.0)},
                {"ffn",
                 {{"kind", kind.name},
                  {"heads", i64("moe_heads", 8)},
                  {"sqrt_n", i64("moe_experts", 512)},
                  {"dim", i64("moe_dim", 8)},
                  {"topk", i64("moe_topk", 32)},
                  {"group", i64("moe_groups", 4)}}}};
  try {
    return parse_config(json{{"model", model}});
  } catch (const Error& e) {
    // Name the HF field beside ours: "config key 'model.ffn.topk' ... (moe_topk)".
    static const std::array<std::pair<const char*, const char*>, 13> fields = {{
        {"model.vocab", "vocab_size"},
        {"model.d'", "hidden_size"},
        {"model.layers", "num_hidden_layers"},
        {"model.heads", "num_attention_heads"},
        {"model.kv_heads", "num_key_value_heads"},
        {"model.context", "max_position_embeddings"},
        {"model.ffn.heads", "moe_heads"},
        {"model.ffn.sqrt_n", "moe_experts"},
        {"model.ffn.dim", "moe_dim"},
        {"model.ffn.topk", "moe_topk"},
        {"model.ffn.group", "moe_groups"},
        {"monet: topk", "moe_topk"},  // MonetOptions::validate's cross-field rules
        {"monet_vd: dim", "moe_dim"},
    }};
    std::string hint;
    for (const auto& [ours, theirs] : fields)
      if (std::string_view(e.what()).find(ours) != std::string_view::npos) hint = theirs;
    throw Error(fmt::format("{}: {}{}", where, e.what(),
                            hint.empty() ? "" : fmt::format(" (the \"{}\" field)", hint)));
  }
}

json hf_config(const ModelConfig& m, const std::string& torch_dtype) {
  MONET_CHECK(!m.ffn.kind->hf_decompose.empty(),
              "the Hugging Face layout holds MONET models (model.ffn.kind {}), not '{}'",
              fmt::join(hf_kind_names(), " or "), m.ffn.kind->name);
  const json& f = m.ffn.params;
  // No auto_map: it would name a modeling_monet.py that the folder does not hold (the README.md
  // written beside it says how to add the authors' one).
  return {{"architectures", {"MonetForCausalLM"}},
          {"model_type", "monet"},
          {"vocab_size", m.vocab},
          {"hidden_size", m.d},
          {"intermediate_size", nullptr},
          {"num_hidden_layers", m.layers},
          {"num_attention_heads", m.heads},
          {"num_key_value_heads", m.kv_heads > 0 ? m.kv_heads : m.heads},
          {"hidden_act", "relu2"},
          {"max_position_embeddings", m.context},
          {"rms_norm_eps", m.norm_eps},
          {"rope_theta", m.rope_theta},
          {"rope_scaling", nullptr},
          {"attention_bias", false},
          {"tie_word_embeddings", false},
          {"torch_dtype", torch_dtype},
          {"moe_dim", f.at("dim")},
          {"moe_experts", f.at("sqrt_n")},
          {"moe_heads", f.at("heads")},
          {"moe_topk", f.at("topk")},
          {"moe_groups", f.at("group")},
          {"moe_decompose", m.ffn.kind->hf_decompose}};
}

std::shared_ptr<nn::Transformer> load_hf_model(
    const fs::path& dir, Config* config, Device device,
    const std::function<void(const std::string&)>& note) {
  const fs::path cfg_file = dir / "config.json";
  const json hf = parse_json_strict(read_file(cfg_file), cfg_file.string());
  Config c = config_from_hf(hf, fmt::format("Hugging Face config '{}'", cfg_file.string()));
  const int64_t params = count_parameters(c.model);
  if (note)
    note(fmt::format(
        "{}: {} ({} weights), {} parameters, {} as float32 (predicted on the meta device)",
        dir.string(), c.model.ffn.kind->name, hf.value("torch_dtype", "float32"),
        format_count(static_cast<double>(params)),
        format_bytes(4.0 * static_cast<double>(params))));
  // Loading holds the f32 weights and one shard's tensors (bf16 as released) while they are
  // converted: both must fit, or the refusal comes now rather than from the kernel's OOM killer.
  double shard = 0;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().extension() == ".safetensors")
      shard = std::max(shard, static_cast<double>(fs::file_size(entry.path())));
  const double weights = 4.0 * static_cast<double>(params), avail = available_bytes(device);
  MONET_CHECK(weights + shard < avail,
              "{}: loading needs {:.2f} GiB ({:.2f} GiB of float32 weights and {:.2f} GiB for the "
              "largest shard while it is converted), over the {:.2f} GiB available",
              dir.string(), (weights + shard) / (1 << 30), weights / (1 << 30), shard / (1 << 30),
              avail / (1 << 30));
  Generator gen(c.run.seed);
  auto model = build_model(c.model, gen, DType::F32, device);  // refuses what will not fit

  // Shard by shard, each tensor converted into its parameter and dropped.
  const std::string what = fmt::format("checkpoint '{}'", dir.string());
  const bool tied = field<bool>(hf, "tie_word_embeddings", cfg_file.string(), false);
  std::map<std::string, Tensor> dst;
  for (const auto& [name, t] : model_state(*model)) dst.emplace(name, t);
  std::set<std::string> filled;
  auto fill = [&](const std::string& mine, const Tensor& t) {
    auto it = dst.find(mine);
    MONET_CHECK(it != dst.end(), "{}: unexpected tensor '{}'", what, mine);
    check_checkpoint_shape(what, mine, t, it->second);
    MONET_CHECK(filled.insert(mine).second, "{}: tensor '{}' is given twice", what, mine);
    copy_(it->second, t.to(it->second.dtype()).to(it->second.device()));
  };
  for_each_model_shard(dir, [&](NamedTensors&& shard_tensors) {
    NoGradGuard ng;
    for (auto& [name, t] : shard_tensors) {
      std::string mine;
      try {
        mine = our_tensor_name(name);
      } catch (const Error& e) {
        throw Error(fmt::format("{}: {}", what, e.what()));
      }
      if (mine.empty()) continue;
      MONET_CHECK(!(tied && mine == "lm_head.weight"),
                  "{}: holds lm_head.weight although config.json ties it to the embedding", what);
      fill(mine, t);
      if (tied && mine == "embed.weight") fill("lm_head.weight", t);
      t = Tensor();  // its memory goes back now, not with the shard
    }
  });
  for (const auto& [name, t] : dst)
    MONET_CHECK(filled.count(name), "{}: tensor '{}' ({}) is missing", what, hf_tensor_name(name),
                name);
  model->eval();
  if (config) *config = c;
  return model;
}

namespace {

// A Hugging Face `tokenizers` file whose ids are the bytes themselves (our byte-level tokenizer):
// a BPE with the 256 byte symbols of the ByteLevel pre-tokenizer (GPT-2's printable stand-ins for
// bytes) and no merges, so PreTrainedTokenizerFast encodes text to the ids this model read.
json byte_level_tokenizer_json() {
  json vocab = json::object();
  int extra = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
    const int cp = printable ? b : 256 + extra++;
    std::string utf8;  // the code point (< 0x800) in UTF-8
    if (cp < 0x80) {
      utf8 += static_cast<char>(cp);
    } else {
      utf8 += static_cast<char>(0xC0 | (cp >> 6));
      utf8 += static_cast<char>(0x80 | (cp & 0x3F));
    }
    vocab[utf8] = b;
  }
  const json byte_level = {{"type", "ByteLevel"},
                           {"add_prefix_space", false},
                           {"trim_offsets", false},
                           {"use_regex", false}};
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", json::array()},
          {"normalizer", nullptr},
          {"pre_tokenizer", byte_level},
          {"post_processor", nullptr},
          {"decoder", byte_level},
          {"model",
           {{"type", "BPE"},
            {"dropout", nullptr},
            {"unk_token", nullptr},
            {"continuing_subword_prefix", nullptr},
            {"end_of_word_suffix", nullptr},
            {"fuse_unk", false},
            {"byte_fallback", false},
            {"vocab", vocab},
            {"merges", json::array()}}}};
}

constexpr const char* kExportReadme =
    "# A MONET model exported by monet-cpp\n\n"
    "`config.json` and `model.safetensors` follow the layout of the released MONET checkpoints\n"
    "(arXiv 2412.04139). `monet eval|sample|experts --ckpt THIS_FOLDER` reads it as it is.\n\n"
    "Hugging Face `transformers` has no built-in `monet` model type: put the authors'\n"
    "`modeling_monet.py` (from the MONET repository) beside these files, add\n"
    "`\"auto_map\": {\"AutoConfig\": \"modeling_monet.MonetConfig\", \"AutoModelForCausalLM\":\n"
    "\"modeling_monet.MonetForCausalLM\"}` to config.json, and load with\n"
    "`AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)`.\n\n"
    "The tokenizer: `tokenizer.model` (SentencePiece) when the model has one; otherwise the ids "
    "are\n"
    "the text's bytes, and `tokenizer.json` encodes them so for `PreTrainedTokenizerFast`.\n";

}  // namespace

void export_hf(const nn::Module& model, const ModelConfig& m, const fs::path& out, DType dtype,
               const fs::path& tokenizer_model) {
  MONET_CHECK(dtype == DType::F32 || dtype == DType::BF16,
              "export: the weights are written as F32 or BF16, not {}", dtype_name(dtype));
  MONET_CHECK(!fs::exists(out), "export: '{}' already exists; remove it or name another folder",
              out.string());
  const json cfg = hf_config(m, dtype == DType::BF16 ? "bfloat16" : "float32");
  // Parameters in `dtype`; buffers (the routers' running statistics) stay f32, whose rounding
  // would move the routers' thresholds.
  NamedTensors tensors;
  for (const auto& [name, t] : model.named_parameters())
    tensors.emplace_back(hf_tensor_name(name), t.detach().to(Device::cpu()).to(dtype));
  for (const auto& [name, t] : model.named_buffers())
    tensors.emplace_back(hf_tensor_name(name), t.detach().to(Device::cpu()).to(DType::F32));
  const fs::path tmp = out.string() + ".tmp";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  write_file_atomic(tmp / "config.json", cfg.dump(2) + "\n");
  save_safetensors(tmp / "model.safetensors", tensors, {{"format", "pt"}});
  if (!tokenizer_model.empty()) {
    fs::copy_file(tokenizer_model, tmp / "tokenizer.model");
  } else {
    write_file_atomic(tmp / "tokenizer.json", byte_level_tokenizer_json().dump(1) + "\n");
    write_file_atomic(
        tmp / "tokenizer_config.json",
        json{{"tokenizer_class", "PreTrainedTokenizerFast"}, {"model_max_length", m.context}}.dump(
            2) +
            "\n");
  }
  write_file_atomic(tmp / "README.md", kExportReadme);
  fs::rename(tmp, out);
}

}  // namespace monet
