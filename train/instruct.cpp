#include "train/instruct.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>

#include "core/autograd.h"
#include "core/error.h"
#include "util/fileio.h"
#include "util/json_value.h"
#include "util/text.h"

namespace monet {

namespace fs = std::filesystem;
using nlohmann::json;

std::string instruct_prompt(const InstructExample& e) {
  return e.prompt + std::string(kInstructSeparator);
}

std::string instruct_text(const InstructExample& e) {
  return instruct_prompt(e) + e.response + std::string(kInstructEnd);
}

namespace {

std::string string_field(const json& j, const char* key, const std::string& where) {
  const auto it = j.find(key);
  MONET_CHECK(it != j.end() && it->is_string(), "{}: field '{}' must be a string{}", where, key,
              it == j.end() ? " (it is missing)" : fmt::format(", got {}", it->type_name()));
  return it->get<std::string>();
}

}  // namespace

std::vector<InstructExample> load_instruct_jsonl(const fs::path& path) {
  MONET_CHECK(fs::is_regular_file(path), "instruction data: no file '{}'", path.string());
  std::ifstream in(path, std::ios::binary);
  std::vector<InstructExample> out;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    const std::string where = fmt::format("{}:{}", path.string(), n);
    if (line.empty()) continue;
    const json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    MONET_CHECK(j.is_object(), "{}: not a JSON object", where);
    InstructExample e{string_field(j, "family", where), string_field(j, "cluster", where),
                      string_field(j, "prompt", where), string_field(j, "response", where)};
    MONET_CHECK(!e.prompt.empty() && !e.response.empty(), "{}: empty prompt or response", where);
    MONET_CHECK(e.response.find('\n') == std::string::npos,
                "{}: the response holds a newline, which ends a response (train/instruct.h)",
                where);
    out.push_back(std::move(e));
  }
  MONET_CHECK(!out.empty(), "instruction data: '{}' holds no example", path.string());
  return out;
}

bool is_instruct_folder(const fs::path& folder) {
  return fs::is_regular_file(folder / "train.jsonl");
}

const FamilyInfo& InstructData::family(std::string_view name) const {
  const auto it = std::find_if(families.begin(), families.end(),
                               [&](const FamilyInfo& f) { return f.name == name; });
  if (it != families.end()) return *it;
  std::vector<std::string> names(families.size());
  std::transform(families.begin(), families.end(), names.begin(),
                 [](const FamilyInfo& f) { return f.name; });
  throw Error(fmt::format("instruction data '{}': no family '{}'; the families are {}",
                          folder.string(), name, fmt::join(names, ", ")));
}

InstructData load_instruct_data(const fs::path& folder) {
  MONET_CHECK(fs::is_directory(folder), "instruction data: no folder '{}'", folder.string());
  InstructData d;
  d.folder = folder;
  const fs::path fam = folder / "families.json";
  MONET_CHECK(fs::is_regular_file(fam), "instruction data: no file '{}'", fam.string());
  const json j = parse_json_strict(read_file(fam), fam.string());
  MONET_CHECK(j.is_object() && j.contains("families") && j["families"].is_array(),
              "{}: must be a JSON object with an array 'families'", fam.string());
  std::set<std::string> seen;
  for (const json& f : j["families"]) {
    const std::string where = fam.string();
    MONET_CHECK(f.is_object(), "{}: each family must be an object", where);
    FamilyInfo info{string_field(f, "name", where), string_field(f, "cluster", where),
                    f.value("held_out", false)};
    MONET_CHECK(seen.insert(info.name).second, "{}: family '{}' listed twice", where, info.name);
    d.families.push_back(std::move(info));
  }
  d.train = load_instruct_jsonl(folder / "train.jsonl");
  d.test = load_instruct_jsonl(folder / "test.jsonl");
  for (const auto* split : {&d.train, &d.test}) {
    const std::string file = (folder / (split == &d.train ? "train.jsonl" : "test.jsonl")).string();
    for (const InstructExample& e : *split) {
      const auto info = std::find_if(d.families.begin(), d.families.end(),
                                     [&](const FamilyInfo& f) { return f.name == e.family; });
      MONET_CHECK(info != d.families.end(), "{}: family '{}' is not in families.json", file,
                  e.family);
      MONET_CHECK(info->cluster == e.cluster,
                  "{}: family '{}' has cluster '{}' here and '{}' in families.json", file, e.family,
                  e.cluster, info->cluster);
      MONET_CHECK(split == &d.test || !info->held_out,
                  "{}: family '{}' is held out (families.json) but has training examples", file,
                  e.family);
    }
  }
  return d;
}

std::vector<InstructExample> select_families(const InstructData& data,
                                             const std::vector<InstructExample>& examples,
                                             std::string_view csv, std::string_view what) {
  if (csv.empty()) return examples;
  std::set<std::string, std::less<>> wanted;
  for (const std::string& name : split_commas(csv)) {
    try {
      (void)data.family(name);
    } catch (const Error& e) {
      throw Error(fmt::format("{}: {}", what, e.what()));
    }
    wanted.insert(name);
  }
  std::vector<InstructExample> out;
  for (const InstructExample& e : examples)
    if (wanted.count(e.family)) out.push_back(e);
  MONET_CHECK(!out.empty(), "{}: the families '{}' have no examples here", what, csv);
  return out;
}

InstructTokens tokenize_instruct(const Tokenizer& tokenizer, const InstructExample& e) {
  InstructTokens t;
  t.ids = tokenizer.encode(instruct_prompt(e));
  if (tokenizer.bos_id() >= 0) t.ids.insert(t.ids.begin(), tokenizer.bos_id());
  t.prompt = static_cast<int64_t>(t.ids.size());
  const std::vector<int32_t> answer = tokenizer.encode(e.response + std::string(kInstructEnd));
  t.ids.insert(t.ids.end(), answer.begin(), answer.end());
  return t;
}

EvalBatch instruct_batch(const std::vector<const InstructTokens*>& rows, int64_t T, Device device) {
  const int64_t B = static_cast<int64_t>(rows.size());
  MONET_CHECK(B > 0 && T > 0, "instruction batch: {} rows of length {}", B, T);
  std::vector<int32_t> in(static_cast<size_t>(B * T), 0), out(in.size(), kIgnoreTarget);
  EvalBatch b;
  for (int64_t r = 0; r < B; ++r) {
    const InstructTokens& x = *rows[static_cast<size_t>(r)];
    const int64_t L = static_cast<int64_t>(x.ids.size());
    MONET_CHECK(L - 1 <= T,
                "instruction batch: an example of {} tokens needs a context of {}, the model's is "
                "{}",
                L, L - 1, T);
    for (int64_t t = 0; t + 1 < L; ++t) {
      in[r * T + t] = x.ids[t];
      if (t + 1 >= x.prompt) out[r * T + t] = x.ids[t + 1], ++b.scored;
    }
  }
  b.inputs = from_vector(in, {B, T}, device);
  b.targets = from_vector(out, {B, T}, device);
  return b;
}

InstructBatcher::InstructBatcher(std::vector<InstructTokens> examples, uint64_t seed)
    : examples_(std::move(examples)), gen_(seed) {
  MONET_CHECK(!examples_.empty(), "instruction batcher: no examples");
}

std::pair<Tensor, Tensor> InstructBatcher::next(int64_t B, int64_t T, Device device) {
  std::vector<const InstructTokens*> rows;
  for (int64_t r = 0; r < B; ++r)
    rows.push_back(&examples_[static_cast<size_t>(gen_.randint(size()))]);
  ++batches_;
  EvalBatch b = instruct_batch(rows, T, device);
  return {b.inputs, b.targets};
}

void InstructBatcher::set_state(const BatcherState& s) {
  check_batcher_state(s);
  gen_.set_state(s.rng);
  batches_ = s.batches;
}

std::vector<ResponseLoss> response_losses(nn::Transformer& model,
                                          const std::vector<InstructTokens>& examples, int64_t B,
                                          Communicator* comm) {
  MONET_CHECK(B > 0, "response loss: batch {} must be positive", B);
  NoGradGuard ng;
  const bool was_training = model.is_training();
  model.eval();
  const int64_t T = model.config().context, V = model.config().vocab;
  const int64_t n = static_cast<int64_t>(examples.size());
  std::vector<ResponseLoss> out(examples.size());
  for (int64_t first = 0; first < n; first += B) {
    if (comm && !comm->owns(first / B)) continue;
    std::vector<const InstructTokens*> rows;
    for (int64_t i = first; i < std::min(n, first + B); ++i) rows.push_back(&examples[i]);
    const EvalBatch b = instruct_batch(rows, T, model.config().device);
    const std::vector<float> logits =
        model.forward(b.inputs).to(Device::cpu()).to(DType::F32).to_vector<float>();
    const std::vector<int32_t> targets = b.targets.to(Device::cpu()).to_vector<int32_t>();
    for (size_t r = 0; r < rows.size(); ++r)
      for (int64_t t = 0; t < T; ++t) {  // nats = logsumexp(row) - logit[target]
        const int32_t y = targets[r * T + t];
        if (y == kIgnoreTarget) continue;
        const float* z = &logits[(r * T + t) * V];
        const float top = *std::max_element(z, z + V);
        const double sum = std::accumulate(z, z + V, 0.0, [&](double acc, float zv) {
          return acc + std::exp(static_cast<double>(zv - top));
        });  // >= 1: the top logit adds exp(0)
        ResponseLoss& l = out[first + r];
        l.nats += std::log(sum) + top - z[y];
        ++l.tokens;
      }
  }
  model.train(was_training);
  if (comm && comm->size() > 1) {  // each example from the rank that ran it (0 elsewhere)
    std::vector<double> nats(out.size()), tokens(out.size());
    for (size_t i = 0; i < out.size(); ++i)
      nats[i] = out[i].nats, tokens[i] = static_cast<double>(out[i].tokens);
    comm->all_reduce_sum(nats.data(), n);
    comm->all_reduce_sum(tokens.data(), n);
    for (size_t i = 0; i < out.size(); ++i) out[i] = {nats[i], static_cast<int64_t>(tokens[i])};
  }
  return out;
}

}  // namespace monet
