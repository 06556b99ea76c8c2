// Expert purging on a per-token score: Pearson correlations, removal, report (see purge.h).
#include "eval/purge.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "eval/control.h"
#include "util/fileio.h"

namespace monet::interp {

namespace fs = std::filesystem;

std::vector<double> read_token_scores(const fs::path& path) {
  std::istringstream in(read_file(path));
  std::vector<double> v;
  std::string word;
  while (in >> word) {
    size_t used = 0;
    double x = 0;
    try {
      x = std::stod(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    MONET_CHECK(used == word.size() && std::isfinite(x),
                "purge: score file '{}': entry {} ('{}') is not a finite number", path.string(),
                v.size() + 1, word);
    v.push_back(x);
  }
  MONET_CHECK(!v.empty(), "purge: score file '{}' holds no numbers", path.string());
  return v;
}

PearsonAccumulator::PearsonAccumulator(int64_t experts, double y_center)
    : center_(y_center),
      sx_(static_cast<size_t>(experts), 0.0),
      sxx_(sx_.size(), 0.0),
      sxy_(sx_.size(), 0.0) {}

void PearsonAccumulator::add(double y, const int32_t* experts, const float* scores, int64_t count) {
  y -= center_;
  ++n_;
  sy_ += y;
  syy_ += y * y;
  for (int64_t q = 0; q < count; ++q) {
    const size_t e = static_cast<size_t>(experts[q]);
    const double x = scores[q];
    sx_[e] += x;
    sxx_[e] += x * x;
    sxy_[e] += x * y;
  }
}

std::vector<double> PearsonAccumulator::correlations() const {
  const double n = static_cast<double>(n_);
  const double vy = n * syy_ - sy_ * sy_;
  std::vector<double> r(sx_.size(), 0.0);
  for (size_t e = 0; e < r.size(); ++e) {
    const double vx = n * sxx_[e] - sx_[e] * sx_[e];
    if (vx > 0 && vy > 0) r[e] = (n * sxy_[e] - sx_[e] * sy_) / std::sqrt(vx * vy);
  }
  return r;
}

std::vector<double> PearsonAccumulator::means() const {
  std::vector<double> m(sx_.size(), 0.0);
  if (n_ > 0)
    for (size_t e = 0; e < m.size(); ++e) m[e] = sx_[e] / static_cast<double>(n_);
  return m;
}

namespace {

// Streams `text` through the model: the loss of every predicted token, split by its score, and
// (when `acc` is given) each site's correlation sums over the input tokens.
TextLoss text_pass(ExpertModel& em, const std::vector<int32_t>& text,
                   const std::vector<double>& score, double cut, const PurgeOptions& opt,
                   std::vector<PearsonAccumulator>* acc) {
  nn::Transformer& model = em.model();
  NoGradGuard ng;
  const bool was_training = model.is_training();
  model.eval();
  double high = 0, low = 0;
  TextLoss out;
  const int64_t V = model.config().vocab;
  for (const EvalBatch& b : eval_batches(text, opt.batch, model.config().context, opt.text_windows,
                                         model.config().device)) {
    const std::vector<float> lp = log_softmax(model.forward(b.inputs), -1).to_vector<float>();
    const std::vector<int32_t> targets = b.targets.to_vector<int32_t>();
    const int64_t rows = b.inputs.size(0), len = b.inputs.size(1);
    std::vector<TokenScores> ts;
    if (acc)
      for (size_t s = 0; s < acc->size(); ++s) ts.push_back(em.scores(s));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t t = 0; t < len; ++t) {
        const int64_t tok = r * len + t;
        if (targets[tok] == kIgnoreTarget) continue;
        const int64_t p = b.starts[r] + t;  // the input token; the target is p + 1
        const double nll = -lp[tok * V + targets[tok]];
        if (score[p + 1] > cut)
          high += nll, ++out.n_high;
        else
          low += nll, ++out.n_low;
        if (acc)
          for (size_t s = 0; s < acc->size(); ++s) {
            const TokenScores& x = ts[s];
            (*acc)[s].add(score[p], x.expert.data() + x.begin[tok], x.score.data() + x.begin[tok],
                          x.begin[tok + 1] - x.begin[tok]);
          }
      }
  }
  model.train(was_training);
  const int64_t n = out.n_high + out.n_low;
  out.all = n ? (high + low) / static_cast<double>(n) : 0.0;
  out.high = out.n_high ? high / static_cast<double>(out.n_high) : 0.0;
  out.low = out.n_low ? low / static_cast<double>(out.n_low) : 0.0;
  return out;
}

}  // namespace

PurgeResult run_purge(ExpertModel& em, const std::vector<Domain>& domains,
                      const std::vector<int32_t>& text, const std::vector<double>& score,
                      const std::string& text_name, const PurgeOptions& opt,
                      const std::function<void(const std::string&)>& progress) {
  auto say = [&](const std::string& what) {
    if (progress) progress(what);
  };
  MONET_CHECK(score.size() == text.size(),
              "purge: the score has {} numbers but the text '{}' has {} tokens (one number per "
              "token is needed)",
              score.size(), text_name, text.size());
  MONET_CHECK(!opt.thresholds.empty(), "purge: no threshold given");
  PurgeResult r;
  r.kind = em.kind();
  r.text_name = text_name;
  r.sites = em.sites();
  const auto [lo, hi] = std::minmax_element(score.begin(), score.end());
  r.cut = (*lo + *hi) / 2;
  double mean = 0;
  for (double y : score) mean += y;
  mean /= static_cast<double>(score.size());

  // The selection half and the evaluation half (the whole text twice without the split).
  r.split = opt.split;
  const size_t half = opt.split ? text.size() / 2 : 0;
  const std::vector<int32_t> sel_text(
      text.begin(), text.begin() + static_cast<std::ptrdiff_t>(opt.split ? half : text.size())),
      eval_text(text.begin() + static_cast<std::ptrdiff_t>(half), text.end());
  const std::vector<double> sel_score(
      score.begin(), score.begin() + static_cast<std::ptrdiff_t>(opt.split ? half : score.size())),
      eval_score(score.begin() + static_cast<std::ptrdiff_t>(half), score.end());
  const int64_t T = em.model().config().context;
  MONET_CHECK(static_cast<int64_t>(eval_text.size()) >= T + 1 &&
                  static_cast<int64_t>(sel_text.size()) >= T + 1,
              "purge: the text '{}' has {} tokens; each half needs a window of T + 1 = {} ({} "
              "tokens in all)",
              text_name, text.size(), T + 1, 2 * (T + 1));

  em.restore();
  say(fmt::format("correlations on {} of '{}'", opt.split ? "the first half" : "all", text_name));
  std::vector<PearsonAccumulator> acc;
  for (const ExpertSite& s : r.sites) acc.emplace_back(s.experts, mean);
  const TextLoss whole = text_pass(em, sel_text, sel_score, r.cut, opt, &acc);
  r.tokens = acc.front().tokens();
  for (const PearsonAccumulator& a : acc) r.correlation.push_back(a.correlations());
  r.text_before = opt.split ? text_pass(em, eval_text, eval_score, r.cut, opt, nullptr) : whole;
  nn::Transformer& model = em.model();
  say("val loss of the full model");
  r.before = evaluate(model, domains, opt.batch, T, opt.eval_windows);

  int64_t all = 0;
  for (const ExpertSite& s : r.sites) all += s.experts;
  Generator gen(opt.seed);
  for (double R : opt.thresholds) {
    PurgeRow row;
    row.threshold = R;
    int64_t removed = 0;
    std::vector<std::vector<int64_t>> chosen(r.sites.size());
    for (size_t s = 0; s < r.sites.size(); ++s) {
      for (size_t e = 0; e < r.correlation[s].size(); ++e)
        if (r.correlation[s][e] >= R) chosen[s].push_back(static_cast<int64_t>(e));
      row.removed.push_back(static_cast<int64_t>(chosen[s].size()));
      removed += static_cast<int64_t>(chosen[s].size());
      em.remove(s, chosen[s]);
    }
    row.fraction = static_cast<double>(removed) / static_cast<double>(all);
    say(fmt::format("threshold {}: {} experts removed", R, removed));
    row.text = text_pass(em, eval_text, eval_score, r.cut, opt, nullptr);
    row.after = evaluate(model, domains, opt.batch, T, opt.eval_windows);
    em.restore();
    for (int draw = 0; draw < opt.control_draws && removed > 0; ++draw) {
      for (size_t s = 0; s < r.sites.size(); ++s)
        em.remove(s, matched_random_experts(acc[s].means(), chosen[s], gen).experts);
      say(fmt::format("threshold {}: matched random control {} of {}", R, draw + 1,
                      opt.control_draws));
      row.controls.push_back(text_pass(em, eval_text, eval_score, r.cut, opt, nullptr));
      em.restore();
    }
    r.rows.push_back(std::move(row));
  }
  return r;
}

namespace {
// "+0.0123 ± 0.0045 (10)": mean ± sd of the controls' Δ loss; "–" without controls.
std::string control_cell(const std::vector<TextLoss>& controls, const TextLoss& before,
                         double TextLoss::*part) {
  if (controls.empty()) return "–";
  double mean = 0, ss = 0;
  const auto n = static_cast<double>(controls.size());
  for (const TextLoss& c : controls) mean += (c.*part - before.*part) / n;
  for (const TextLoss& c : controls) ss += std::pow(c.*part - before.*part - mean, 2);
  return fmt::format("{:+.4f} ± {:.4f} ({})", mean, n > 1 ? std::sqrt(ss / (n - 1)) : 0.0,
                     controls.size());
}
}  // namespace

std::string purge_markdown(const PurgeResult& r) {
  std::string o = fmt::format(
      "Purging the experts of a {} model whose score correlates with the per-token score of "
      "'{}' ({} tokens; high-score tokens: score > {:g}, {} of {} predicted tokens).\n\n",
      r.kind, r.text_name, r.tokens, r.cut, r.text_before.n_high,
      r.text_before.n_high + r.text_before.n_low);
  o += fmt::format(
      "Experts chosen on {}; text losses measured on {}. Before: loss on high-score tokens {:.4f}, "
      "on the others {:.4f} nats.\n\n",
      r.split ? "the text's first half" : "the whole text",
      r.split ? "its second half" : "the same text", r.text_before.high, r.text_before.low);
  o +=
      "| threshold R | experts removed (per site) | fraction | Δ loss high-score | Δ loss others | "
      "random control: Δ high-score | random: Δ others |";
  for (const DomainEval& e : r.before) o += fmt::format(" Δ bpb {} |", e.domain);
  o += "\n|---:|---|---:|---:|---:|---:|---:|";
  for (size_t c = 0; c < r.before.size(); ++c) o += "---:|";
  o += "\n";
  for (const PurgeRow& row : r.rows) {
    std::vector<std::string> parts;
    for (int64_t n : row.removed) parts.push_back(std::to_string(n));
    o += fmt::format("| {:g} | {} | {:.2f}% | {:+.4f} | {:+.4f} |", row.threshold,
                     fmt::join(parts, " / "), 100 * row.fraction,
                     row.text.high - r.text_before.high, row.text.low - r.text_before.low);
    o += fmt::format(" {} | {} |", control_cell(row.controls, r.text_before, &TextLoss::high),
                     control_cell(row.controls, r.text_before, &TextLoss::low));
    for (size_t c = 0; c < r.before.size(); ++c)
      o += fmt::format(" {:+.4f} |", row.after[c].bpb - r.before[c].bpb);
    o += "\n";
  }
  // The most correlated experts overall.
  struct Top {
    double r;
    size_t site;
    int64_t e;
  };
  std::vector<Top> top;
  for (size_t s = 0; s < r.correlation.size(); ++s)
    for (size_t e = 0; e < r.correlation[s].size(); ++e)
      top.push_back({r.correlation[s][e], s, static_cast<int64_t>(e)});
  const size_t k = std::min<size_t>(10, top.size());
  std::partial_sort(top.begin(), top.begin() + static_cast<std::ptrdiff_t>(k), top.end(),
                    [](const Top& a, const Top& b) { return a.r > b.r; });
  o += "\nMost correlated experts: ";
  for (size_t i = 0; i < k; ++i)
    o += fmt::format("{}{} {} r = {:.3f}", i ? "; " : "", r.sites[top[i].site].name,
                     r.sites[top[i].site].label(top[i].e), top[i].r);
  return o + "\n";
}

void write_purge_outputs(const PurgeResult& r, const fs::path& out) {
  using nlohmann::json;
  fs::create_directories(out);
  write_file_atomic(out / "purge.md", purge_markdown(r));
  auto evals = [](const std::vector<DomainEval>& v) {
    json a = json::array();
    for (const DomainEval& e : v)
      a.push_back({{"domain", e.domain}, {"loss", e.loss}, {"bpb", e.bpb}, {"tokens", e.tokens}});
    return a;
  };
  auto text = [](const TextLoss& t) {
    return json{
        {"high", t.high}, {"low", t.low}, {"all", t.all}, {"n_high", t.n_high}, {"n_low", t.n_low}};
  };
  auto controls = [&](const std::vector<TextLoss>& v) {
    json a = json::array();
    for (const TextLoss& t : v) a.push_back(text(t));
    return a;
  };
  json j;
  j["kind"] = r.kind;
  j["text"] = r.text_name;
  j["split"] = r.split;
  j["tokens"] = r.tokens;
  j["cut"] = r.cut;
  j["sites"] = json::array();
  for (size_t s = 0; s < r.sites.size(); ++s)
    j["sites"].push_back({{"name", r.sites[s].name},
                          {"layers", r.sites[s].layers},
                          {"experts", r.sites[s].experts},
                          {"correlation", r.correlation[s]}});
  j["before"] = evals(r.before);
  j["text_before"] = text(r.text_before);
  j["rows"] = json::array();
  for (const PurgeRow& row : r.rows)
    j["rows"].push_back({{"threshold", row.threshold},
                         {"removed", row.removed},
                         {"fraction", row.fraction},
                         {"after", evals(row.after)},
                         {"text", text(row.text)},
                         {"controls", controls(row.controls)}});
  write_file_atomic(out / "purge.json", j.dump(1));
}

}  // namespace monet::interp
