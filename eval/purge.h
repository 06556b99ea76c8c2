// Expert purging on a per-token score (Park et al. 2024, §5.3 "toxic expert purging";
// docs/math/interpretability.md §6.6): the Pearson correlation between each expert's per-token
// score (eval/experts.h) and a score the user supplies for every token of a text; experts with
// correlation ≥ R are removed (exactly, as in eval/mask.h), and the loss changes are reported.
//
// The paper scores toxicity; any per-token score works. The shipped toy example
// (docs/purge/) marks the bytes inside Python `#` comments with 1 and everything else with 0, so
// the experts that fire on comments are purged and the loss on comment bytes should rise more
// than on the rest.
//
// Which score goes with which expert score: the text is streamed in evaluation windows, and the
// expert scores of the input token at position p are paired with score[p]. Loss changes on the
// text are split by the score of the predicted token: "high" tokens have a score above the
// midpoint of the score's range ((min + max) / 2: exactly the 1s of a 0/1 score), "low" ones the
// rest.
//
// Selection and evaluation use different tokens: the experts are chosen on the first half of the
// text, and the text's loss changes are measured on the second half (`split`, on by default), so
// an expert that merely fits the noise of the scored tokens earns nothing. The control: for each
// threshold, `control_draws` random sets per site of the same size and within 5% of the chosen
// set's mass (an expert's mean score on the selection half; eval/control.h), each evaluated on the
// same half.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "eval/experts.h"
#include "train/evaluate.h"

namespace monet::interp {

// Whitespace-separated numbers, one per token (a byte, with the byte tokenizer). Errors name the
// file and the first entry that is not a finite number.
std::vector<double> read_token_scores(const std::filesystem::path& path);

// Pearson correlation of every expert's score with y, accumulated token by token from sparse
// rows (experts absent from a row score 0), in O(active experts) per token. `y_center` is
// subtracted from every y first (any constant gives the same r; the mean of y keeps the sums
// well conditioned).
class PearsonAccumulator {
 public:
  PearsonAccumulator(int64_t experts, double y_center = 0);
  void add(double y, const int32_t* experts, const float* scores, int64_t count);
  // r_e = (nΣxy − ΣxΣy) / √((nΣx² − (Σx)²)(nΣy² − (Σy)²)); 0 when either variance is 0.
  std::vector<double> correlations() const;
  std::vector<double> means() const;  // each expert's mean score over the tokens added
  int64_t tokens() const { return n_; }

 private:
  double center_;
  int64_t n_ = 0;
  double sy_ = 0, syy_ = 0;
  std::vector<double> sx_, sxx_, sxy_;
};

struct PurgeOptions {
  std::vector<double> thresholds{0.2, 0.1, 0.05};  // the paper's
  int64_t batch = 16;
  int64_t text_windows = 256;  // windows of the scored text, evenly spread (0 = all)
  int64_t eval_windows = 64;   // val windows per domain (0 = all)
  bool split = true;           // select on the text's first half, measure on its second
  int control_draws = 10;      // matched random sets per threshold (0: no control)
  uint64_t seed = 0;           // of the control
};

// Mean loss (nats) on the scored text's predicted tokens, split by their score.
struct TextLoss {
  double high = 0, low = 0, all = 0;
  int64_t n_high = 0, n_low = 0;
};

struct PurgeRow {
  double threshold = 0;
  std::vector<int64_t> removed;  // [site]
  double fraction = 0;           // removed / all experts
  std::vector<DomainEval> after;
  TextLoss text;
  std::vector<TextLoss> controls;  // the text's loss without each matched random set
};

struct PurgeResult {
  std::string kind, text_name;
  std::vector<ExpertSite> sites;
  int64_t tokens = 0;                            // tokens of the text streamed for the correlations
  bool split = true;                             // text_before and the rows: the second half
  double cut = 0;                                // the high/low split of the score
  std::vector<std::vector<double>> correlation;  // [site][expert]
  std::vector<DomainEval> before;
  TextLoss text_before;
  std::vector<PurgeRow> rows;
};

// text: token ids; score: one per token of text (same length). Corpus domains for the val losses.
PurgeResult run_purge(ExpertModel& em, const std::vector<Domain>& domains,
                      const std::vector<int32_t>& text, const std::vector<double>& score,
                      const std::string& text_name, const PurgeOptions& opt,
                      const std::function<void(const std::string&)>& progress = nullptr);
std::string purge_markdown(const PurgeResult& r);
// purge.md and purge.json (with every expert's correlation) in `out`.
void write_purge_outputs(const PurgeResult& r, const std::filesystem::path& out);

}  // namespace monet::interp
