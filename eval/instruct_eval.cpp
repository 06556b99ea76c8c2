#include "eval/instruct_eval.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/error.h"
#include "train/sample.h"
#include "util/fileio.h"

namespace monet {

namespace fs = std::filesystem;
using nlohmann::json;

double InstructScore::accuracy() const {
  return examples ? static_cast<double>(correct) / static_cast<double>(examples) : 0.0;
}
double InstructScore::loss() const {
  return tokens ? nats / static_cast<double>(tokens) : 0.0;
}
void InstructScore::add(const InstructScore& o) {
  examples += o.examples;
  correct += o.correct;
  tokens += o.tokens;
  nats += o.nats;
}

std::string answer_of(const std::string& generated) {
  return generated.substr(0, generated.find('\n'));
}

std::string greedy_answer(nn::Transformer& model, const Tokenizer& tokenizer,
                          const std::vector<int32_t>& prompt, int64_t max_new) {
  const int64_t context = model.config().context;
  const int64_t n = static_cast<int64_t>(prompt.size());
  MONET_CHECK(n > 0 && n < context,
              "instruct-eval: a prompt of {} tokens does not leave room in the context of {}", n,
              context);
  SampleOptions greedy;
  greedy.temperature = 0;
  greedy.tokens = std::min(max_new, context - n);  // never past the context: no window slides
  greedy.stop = [&](int32_t id) { return tokenizer.decode({id}).find('\n') != std::string::npos; };
  const std::vector<int32_t> ids = sample(model, prompt, greedy);
  const std::vector<int32_t> out(ids.begin() + n, ids.end());
  return answer_of(tokenizer.decode(out));
}

InstructEvalResult instruct_eval(nn::Transformer& model, const Tokenizer& tokenizer,
                                 const InstructData& data, const InstructEvalOptions& opt,
                                 const InstructProgress& progress) {
  MONET_CHECK(opt.split == "test" || opt.split == "train",
              "instruct-eval: the split must be test or train, got '{}'", opt.split);
  MONET_CHECK(opt.max_new > 0 && opt.batch > 0 && opt.limit >= 0,
              "instruct-eval: max_new {} and batch {} must be positive, limit {} non-negative",
              opt.max_new, opt.batch, opt.limit);
  const std::vector<InstructExample> examples = select_families(
      data, opt.split == "test" ? data.test : data.train, opt.families, "instruct-eval --families");
  InstructEvalResult r;
  r.split = opt.split;
  r.held_in = {"held-in", "", false};
  r.held_out = {"held-out", "", true};
  r.all = {"all", "", false};
  std::vector<const FamilyInfo*> present;
  for (const FamilyInfo& f : data.families)
    if (std::any_of(examples.begin(), examples.end(),
                    [&](const InstructExample& e) { return e.family == f.name; }))
      present.push_back(&f);
  for (const FamilyInfo* f : present) {
    std::vector<const InstructExample*> mine;
    std::vector<InstructTokens> tokens;
    for (const InstructExample& e : examples)
      if (e.family == f->name && (opt.limit == 0 || static_cast<int64_t>(mine.size()) < opt.limit))
        mine.push_back(&e), tokens.push_back(tokenize_instruct(tokenizer, e));
    InstructScore s{f->name, f->cluster, f->held_out};
    const std::vector<ResponseLoss> losses = response_losses(model, tokens, opt.batch);
    for (size_t i = 0; i < mine.size(); ++i) {
      const std::vector<int32_t> prompt(tokens[i].ids.begin(),
                                        tokens[i].ids.begin() + tokens[i].prompt);
      InstructPrediction p{f->name, mine[i]->prompt, mine[i]->response,
                           greedy_answer(model, tokenizer, prompt, opt.max_new)};
      p.correct = p.answer == p.expected;
      ++s.examples;
      s.correct += p.correct ? 1 : 0;
      s.nats += losses[i].nats;
      s.tokens += losses[i].tokens;
      r.predictions.push_back(std::move(p));
    }
    r.families.push_back(s);
    auto cluster = std::find_if(r.clusters.begin(), r.clusters.end(),
                                [&](const InstructScore& c) { return c.name == f->cluster; });
    if (cluster == r.clusters.end())
      cluster = r.clusters.insert(r.clusters.end(), {f->cluster, f->cluster, f->held_out});
    cluster->add(s);
    (f->held_out ? r.held_out : r.held_in).add(s);
    r.all.add(s);
    if (progress)
      progress(static_cast<int64_t>(r.families.size()), static_cast<int64_t>(present.size()), s);
  }
  return r;
}

namespace {

// "| name | [cluster |] held in | 3/32 | 0.094 | 1.2345 |"
std::string score_row(const InstructScore& s, bool with_cluster) {
  return fmt::format("| {} |{} {} | {}/{} | {:.3f} | {:.4f} |\n", s.name,
                     with_cluster ? fmt::format(" {} |", s.cluster) : "",
                     s.held_out ? "held out" : "held in", s.correct, s.examples, s.accuracy(),
                     s.loss());
}

json score_json(const InstructScore& s) {
  return {{"name", s.name},
          {"cluster", s.cluster},
          {"held_out", s.held_out},
          {"examples", s.examples},
          {"correct", s.correct},
          {"accuracy", s.accuracy()},
          {"response_loss", s.loss()},
          {"response_tokens", s.tokens}};
}

}  // namespace

std::string instruct_markdown(const InstructEvalResult& r) {
  const std::string tail = " split | correct | exact match | response loss (nats/token) |\n";
  std::string s = "| family | cluster |" + tail + "|---|---|---|---:|---:|---:|\n";
  for (const InstructScore& f : r.families) s += score_row(f, true);
  s += "\n| cluster |" + tail + "|---|---|---:|---:|---:|\n";
  for (const InstructScore& c : r.clusters) s += score_row(c, false);
  s += "\n| group | examples | exact match | response loss (nats/token) |\n|---|---:|---:|---:|\n";
  for (const InstructScore* g : {&r.held_in, &r.held_out, &r.all})
    s += fmt::format("| {} | {} | {:.3f} | {:.4f} |\n", g->name, g->examples, g->accuracy(),
                     g->loss());
  return s;
}

json instruct_json(const InstructEvalResult& r) {
  json j = {{"split", r.split},
            {"families", json::array()},
            {"clusters", json::array()},
            {"held_in", score_json(r.held_in)},
            {"held_out", score_json(r.held_out)},
            {"all", score_json(r.all)},
            {"predictions", json::array()}};
  for (const InstructScore& f : r.families) j["families"].push_back(score_json(f));
  for (const InstructScore& c : r.clusters) j["clusters"].push_back(score_json(c));
  for (const InstructPrediction& p : r.predictions)
    j["predictions"].push_back({{"family", p.family},
                                {"prompt", p.prompt},
                                {"expected", p.expected},
                                {"answer", p.answer},
                                {"correct", p.correct}});
  return j;
}

void write_instruct_outputs(const InstructEvalResult& r, const fs::path& dir) {
  fs::create_directories(dir);
  write_file_atomic(dir / "instruct_eval.md", instruct_markdown(r));
  write_file_atomic(dir / "instruct_eval.json",
                    instruct_json(r).dump(1, ' ', false, json::error_handler_t::replace) + "\n");
}

}  // namespace monet
