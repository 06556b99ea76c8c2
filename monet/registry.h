// The feed-forward kinds, one registry row each: the value of model.ffn.kind, its option fields
// (monet/options.h), how to build its layers, which of its parameters are expert parameters, and
// how `monet table` sweeps its expert count N. Config parsing (train/config.cpp), model building
// (train/model.cpp), `monet table` (eval/table.cpp), the interpretability commands and `--help`
// read these rows and nothing else.
//
// Adding a kind: one file (the layer, ending in its row, `const FfnKind& foo_kind()`) and one line
// in ffn_kinds() (monet/registry.cpp).
#pragma once
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/random.h"
#include "monet/options.h"
#include "nn/ffn.h"
#include "nn/transformer.h"

namespace monet::moe {

// The layers of one model, in order: layer i of the model is factory(i) (nn/transformer.h).
using nn::FeedForwardFactory;

// What building needs besides the options: where and how parameters are made, the generator
// they are drawn from (in registration order), and the generator of the routing noise drawn in
// training (null when nothing is drawn; the trainer passes its saved one so a resumed run draws
// the same noise). The factory keeps the two pointers.
struct BuildContext {
  nn::ParamOptions param;
  Generator* init = nullptr;
  Generator* noise = nullptr;
};

struct FfnKind {
  std::string name;          // model.ffn.kind
  std::string label;         // in tables and plots: "MONET-VD"
  std::string summary;       // one line for --help and error messages
  bool has_experts = false;  // the layers implement moe::ExpertLayer (monet/expert_layer.h)

  // The options as JSON, type-erased over the kind's Options struct (see make_kind):
  //   parse: the checked options of `given` at width d, every key written, defaults filled in;
  //   fields: each key's type, default, rule and help.
  std::function<nlohmann::json(const nlohmann::json& given, int64_t d, const std::string& path)>
      parse;
  std::vector<FieldInfo> fields;
  // The layers of a model of width d, from options that `parse` returned.
  std::function<FeedForwardFactory(const nlohmann::json& params, int64_t d, const BuildContext&)>
      build;
  // Whether a parameter (its name inside one layer) belongs to the experts themselves: Table 1's
  // "expert parameters", without routers, product keys or query networks.
  std::function<bool(std::string_view name)> is_expert_param;
  // `monet table`: the settings of this kind at N = √N² experts (Table 1's configuration, merged
  // over the defaults), and the key among them that sets N; null for a kind without experts,
  // measured once.
  std::function<nlohmann::json(int64_t sqrt_n)> sweep;
  std::string n_key;
  // MONET Table 1's exponents of N for this kind: retrieval cost and expert parameters (SMoE N, N;
  // PEER √N, N; MONET √N, √N); `monet table` prints its fitted slopes beside them.
  struct Exponents {
    double retrieval = 0, expert_params = 0;
  };
  std::optional<Exponents> table1;
  // Built for very many experts (PEER's million): `monet table` also sweeps its further √N.
  bool many_experts = false;
  // The released MONET checkpoints' config.json `moe_decompose` value of this kind ("vertical",
  // "horizontal"); empty for a kind that layout cannot hold.
  std::string hf_decompose;
};

// A row from the kind's typed pieces: `fields` declare the options of O (which has a member
// int64_t d, the model width, and a validate() for cross-field rules); `build` makes the factory;
// `base` holds the members that are not config keys (MONET's vertical, which the row decides).
template <class O>
FfnKind make_kind(std::string name, std::string label, std::string summary,
                  std::vector<Field<O>> fields,
                  std::function<FeedForwardFactory(const O&, const BuildContext&)> build,
                  O base = O{}) {
  FfnKind k;
  k.name = std::move(name);
  k.label = std::move(label);
  k.summary = std::move(summary);
  for (const Field<O>& f : fields) k.fields.push_back(f.info);
  k.parse = [fields, base](const nlohmann::json& given, int64_t d, const std::string& path) {
    return write_options(fields, read_options(fields, given, d, path, base));
  };
  k.build = [fields, build, base](const nlohmann::json& params, int64_t d,
                                  const BuildContext& ctx) {
    return build(read_options(fields, params, d, "model.ffn", base), ctx);
  };
  k.is_expert_param = [](std::string_view) { return true; };
  return k;
}

// Every kind, in the order --help and `monet table` list them.
const std::vector<const FfnKind*>& ffn_kinds();
// The rows themselves, for code that builds one kind on purpose (the paper's models in `monet
// table`, the Hugging Face layout); each is defined at the end of its layer's file.
const FfnKind& dense_kind();
const FfnKind& smoe_kind();
const FfnKind& peer_kind();
const FfnKind& monet_hd_kind();
const FfnKind& monet_vd_kind();
// The row named `name`; an error naming the known kinds otherwise (and `what`, the config key or
// option the name came from).
const FfnKind& ffn_kind(std::string_view name,
                        std::string_view what = "config key 'model.ffn.kind'");
std::vector<std::string> ffn_kind_names();

// The parameter groups fine-tuning can freeze (config key finetune.freeze), told apart by a model
// parameter's name (nn/transformer.h) and the kind's row:
//   experts      a feed-forward layer's expert parameters (is_expert_param; dense: its MLP, the
//                one always-on expert)
//   routers      a feed-forward layer's other parameters: SMoE's gate, PEER's query network and
//                product keys, MONET's routers and their BatchNorm gains
//   non-experts  everything outside the feed-forward layers: embeddings, attention, norms, head
// Together they cover every parameter once, so FLAN-MoE's "freeze the MoE layers" is
// "routers,experts" and ST-MoE's "freeze the rest" is "non-experts".
enum class ParamGroup { Experts, Routers, NonExperts };
ParamGroup param_group(std::string_view name, const FfnKind& kind);
std::string_view param_group_name(ParamGroup g);
// finetune.freeze: "none" → {}, else a comma list of group names, each at most once and not all
// three. Errors name the config key and the choices.
std::vector<ParamGroup> parse_freeze(std::string_view text);

}  // namespace monet::moe
