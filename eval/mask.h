// Domain masking (Park et al. 2024, §5.1 "domain masking", docs/math/interpretability.md §6.5):
// select the experts specialised to a domain and remove exactly those, then measure every domain's
// val loss.
//
// Selection (the paper's rule): expert e is specialised to domain d when its routing probability
// on d is at least `ratio` times that on the second domain, i.e. p_d(e) ≥ ratio · max_{d'≠d}
// p_d'(e) (and p_d(e) > 0). Routing probabilities are mean scores over each domain's tokens
// (eval/experts.h), measured on the TRAIN split (--select-windows windows per domain) so that the
// val split the losses are measured on is not the one the experts were chosen on.
//
// Removal is exact and changes nothing else (eval/experts.cpp ExpertModel::remove): a MONET
// composed expert (i, j) loses its Σ_h ĝ1_hi ĝ2_hj E_ij(x) in every layer of its routing group, an
// SMoE expert its g_e E_e(x), a PEER singleton its Σ_h g_he e(x); other gates are not renormalised.
//
// The control (--control): `control_draws` random sets per masked domain and site, each of the
// same size as the selection and within 5% of its routing mass (eval/control.h; the mass of an
// expert is its routing probability averaged over the domains, on the same train windows), so the
// masked domain's Δ is read against the distribution of Δs that removing as much routing at random
// gives.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "eval/experts.h"
#include "train/evaluate.h"

namespace monet::interp {

struct SelectionRule {
  double ratio = 2.0;
  std::string str() const;  // "ratio:2"
};
// "ratio:R" with R ≥ 1; anything else is an error naming the rule.
SelectionRule parse_rule(const std::string& s);

// prob[d][e]: routing probability of expert e on domain d. The experts specialised to `domain`,
// increasing.
std::vector<int64_t> specialised_experts(const std::vector<std::vector<double>>& prob,
                                         size_t domain, const SelectionRule& rule);

struct MaskOptions {
  std::string domain = "all";  // a domain name, or "all": each domain in turn
  SelectionRule rule;
  int64_t select_windows = 256;  // train-split windows per domain for the routing probabilities
  int64_t eval_windows = 64;     // val windows per domain for the losses (0 = all)
  int64_t batch = 16;
  bool control = false;                  // also remove matched random sets (see above)
  int control_draws = 10;                // random sets per masked domain
  uint64_t seed = 0;                     // of the random control
  const Tokenizer* tokenizer = nullptr;  // the bytes behind each token, for bpb; null: bytes
};

struct MaskRow {
  std::string masked;             // the domain, or "random (as <domain>)" for a control
  std::vector<int64_t> removed;   // [site] experts removed
  std::vector<DomainEval> after;  // per domain, then "all"
  // A control row: the domain whose selection it matches, and per site its routing mass over
  // the selection's (within 5% when matched; eval/control.h).
  std::string control_of;
  std::vector<double> mass_ratio;
};

struct MaskResult {
  std::string kind;
  std::vector<ExpertSite> sites;
  std::vector<std::string> domains;
  SelectionRule rule;
  int64_t select_windows = 0, eval_windows = 0;
  std::vector<DomainEval> before;  // per domain, then "all"
  std::vector<MaskRow> rows;
};

// `progress(what)` is told each stage.
MaskResult run_mask(ExpertModel& em, const std::vector<Domain>& domains, const MaskOptions& opt,
                    const std::function<void(const std::string&)>& progress = nullptr);
// The Markdown report: experts removed per site, then per-domain loss and bpb before and after
// (one domain) or the Δ bpb matrix (rows: masked domain, columns: evaluated domain).
std::string mask_markdown(const MaskResult& r);
// mask.md, mask.json and mask.svg (Δ bpb per evaluated domain, one bar series per row) in `out`.
void write_mask_outputs(const MaskResult& r, const std::filesystem::path& out);

}  // namespace monet::interp
