#include "sae/sae_io.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>
#include <utility>

#include "core/error.h"
#include "core/ops.h"

namespace monet::sae {

namespace fs = std::filesystem;

namespace {

const char* const kFormat = "monet-sae";
const char* const kTensors[] = {"W_enc", "b_enc", "W_dec", "b_dec"};

const std::string& meta_value(const Metadata& m, const std::string& key, const fs::path& path) {
  auto it = m.find(key);
  MONET_CHECK(it != m.end(),
              "sae '{}': metadata has no '{}' (not an SAE written by `monet sae "
              "train`?)",
              path.string(), key);
  return it->second;
}

int64_t meta_int(const Metadata& m, const std::string& key, const fs::path& path) {
  const std::string& s = meta_value(m, key, path);
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  MONET_CHECK(ec == std::errc() && end == s.data() + s.size(),
              "sae '{}': metadata '{}' must be an integer, got '{}'", path.string(), key, s);
  return v;
}

double meta_double(const Metadata& m, const std::string& key, const fs::path& path) {
  const std::string& s = meta_value(m, key, path);
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  MONET_CHECK(ec == std::errc() && end == s.data() + s.size() && std::isfinite(v),
              "sae '{}': metadata '{}' must be a finite number, got '{}'", path.string(), key, s);
  return v;
}

}  // namespace

void save_sae(const fs::path& path, const SparseAutoencoder& sae, const Metadata& records) {
  const SaeOptions& o = sae.options();
  Metadata meta{{"format", kFormat},
                {"d", std::to_string(o.d)},
                {"features", std::to_string(o.features)},
                {"activation", activation_name(o.act)},
                {"k", std::to_string(o.k)},
                {"l1", fmt::format("{:.17g}", o.l1)},
                {"layer", std::to_string(o.layer)},
                {"site", nn::hook_site_name(o.site)}};
  for (const auto& [k, v] : records) {
    MONET_CHECK(!meta.count(k), "sae: record '{}' would replace a metadata key", k);
    meta[k] = v;
  }
  NamedTensors tensors;
  for (const auto& [name, t] : sae.named_parameters()) tensors.emplace_back(name, t.to(DType::F32));
  save_safetensors(path, tensors, meta);
}

LoadedSae load_sae(const fs::path& path, Device device) {
  Safetensors st = load_safetensors(path);
  const Metadata& m = st.metadata;
  MONET_CHECK(meta_value(m, "format", path) == kFormat,
              "sae '{}': metadata format is '{}', not '{}'", path.string(), m.at("format"),
              kFormat);
  SaeOptions o;
  o.d = meta_int(m, "d", path);
  o.features = meta_int(m, "features", path);
  const std::string& act = meta_value(m, "activation", path);
  MONET_CHECK(act == activation_name(Activation::TopK) || act == activation_name(Activation::ReLU),
              "sae '{}': metadata 'activation' must be topk or relu, got '{}'", path.string(), act);
  o.act = act == activation_name(Activation::TopK) ? Activation::TopK : Activation::ReLU;
  o.k = meta_int(m, "k", path);
  o.l1 = meta_double(m, "l1", path);
  const int64_t layer = meta_int(m, "layer", path);
  MONET_CHECK(layer >= 0 && layer < (1 << 20), "sae '{}': metadata 'layer' {} out of range",
              path.string(), layer);
  o.layer = static_cast<int>(layer);
  try {
    o.site = nn::parse_hook_site(meta_value(m, "site", path));
    o.validate();
  } catch (const Error& e) {
    throw Error(fmt::format("sae '{}': {}", path.string(), e.what()));
  }
  MONET_CHECK(o.d < (int64_t{1} << 24) && o.features < (int64_t{1} << 28),
              "sae '{}': d {} and features {} are implausibly large", path.string(), o.d,
              o.features);
  // The shapes are checked before anything of the SAE's size is allocated.
  const Shape want[] = {{o.features, o.d}, {o.features}, {o.features, o.d}, {o.d}};
  std::set<std::string> names;
  for (const auto& [name, t] : st.tensors) names.insert(name);
  Tensor found[4];  // in kTensors' order
  for (size_t i = 0; i < 4; ++i) {
    auto it = std::find_if(st.tensors.begin(), st.tensors.end(),
                           [&](const auto& p) { return p.first == kTensors[i]; });
    MONET_CHECK(it != st.tensors.end(), "sae '{}': no tensor '{}'", path.string(), kTensors[i]);
    MONET_CHECK(it->second.shape() == want[i] && is_floating(it->second.dtype()),
                "sae '{}': tensor '{}' is {} {}, expected a float tensor of shape {}",
                path.string(), kTensors[i], dtype_name(it->second.dtype()),
                shape_str(it->second.shape()), shape_str(want[i]));
    found[i] = it->second;
    names.erase(kTensors[i]);
  }
  MONET_CHECK(names.empty(), "sae '{}': unexpected tensor '{}'", path.string(), *names.begin());
  Generator gen(0);
  nn::ParamOptions p;
  p.device = device;
  LoadedSae out{std::make_shared<SparseAutoencoder>(o, gen, p), m};
  SparseAutoencoder& s = *out.sae;
  const Tensor* into[] = {&s.W_enc, &s.b_enc, &s.W_dec, &s.b_dec};  // kTensors' order
  for (size_t i = 0; i < 4; ++i) copy_(*into[i], found[i].to(into[i]->dtype()).to(device));
  return out;
}

std::string describe_sae(const SparseAutoencoder& sae) {
  const SaeOptions& o = sae.options();
  return fmt::format("layer {} {} (F {}, {})", o.layer, nn::hook_site_name(o.site), o.features,
                     o.sparsity());
}

std::vector<std::shared_ptr<SparseAutoencoder>> splice_saes(
    nn::Transformer& model, const std::vector<std::string>& files, bool error_term,
    const std::function<void(const std::string&)>& note) {
  const nn::TransformerConfig& cfg = model.config();
  std::vector<std::shared_ptr<SparseAutoencoder>> out;
  std::set<std::pair<int, nn::HookSite>> used;
  for (const std::string& f : files) {
    LoadedSae l = load_sae(f, cfg.device);
    const SaeOptions& o = l.sae->options();
    MONET_CHECK(o.layer < cfg.n_layers, "sae '{}': layer {}, but the model has {} layers (0-{})", f,
                o.layer, cfg.n_layers, cfg.n_layers - 1);
    MONET_CHECK(o.d == cfg.d_model, "sae '{}': width d = {}, but the model's d_model is {}", f, o.d,
                cfg.d_model);
    MONET_CHECK(used.insert({o.layer, o.site}).second,
                "sae '{}': a second SAE on layer {} {} (one per site)", f, o.layer,
                nn::hook_site_name(o.site));
    l.sae->set_error_term(error_term);
    model.blocks()[static_cast<size_t>(o.layer)]->set_hook(o.site, l.sae);
    out.push_back(l.sae);
  }
  if (note && !out.empty()) {
    std::vector<std::string> what(out.size());
    std::transform(out.begin(), out.end(), what.begin(),
                   [](const auto& s) { return describe_sae(*s); });
    note(fmt::format("spliced {} SAE{}: {}{}", out.size(), out.size() == 1 ? "" : "s",
                     fmt::join(what, ", "),
                     error_term ? "; error terms added back" : "; reconstructions in place"));
  }
  return out;
}

}  // namespace monet::sae
