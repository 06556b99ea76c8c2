// Expert analysis (Park et al. 2024, arXiv 2412.04139, §4.3 and §5; docs/math/interpretability.md
// §6): which tokens each expert fires on, and how its routing mass
// splits over the corpus's domains. `monet experts`, `monet mask` and `monet purge` build on it.
//
// An expert is what a layer kind routes to, and its score for one token is:
//   MONET-HD/VD  composed expert (i, j) of a routing group, flat index i·√N + j:
//                score Σ_h ĝ1_hi ĝ2_hj. The G layers of a group share (ĝ1, ĝ2), so a group is one
//                site, and removing (i, j) removes it from every layer of the group.
//   SMoE         expert e of one layer: its gate g_e (0 when e is not among the token's top k).
//   PEER         singleton e of one layer: Σ_h g_he over the heads that retrieved it (softmax
//                weights; 0 when no head did).
// An expert is active on a token when its score exceeds 1e-2 (the paper's threshold). Its routing
// probability on a domain is its mean score over that domain's tokens.
//
// Cost: per token only the experts with a non-zero score are visited — MONET's ≤ H·k1·k2 pairs
// built from the non-zero entries of ĝ1 and ĝ2 (the router gives exactly 0 to the rest), SMoE's k,
// PEER's h·k — so accumulating is O(tokens × active experts); no tokens × N table is ever built.
// Per expert the statistics are O(domains + K): routing mass and active counts per domain, and a
// K-entry min-heap of its best contexts.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "monet/expert_layer.h"
#include "nn/transformer.h"
#include "train/corpus.h"
#include "train/tokenizer.h"

namespace monet::interp {

inline constexpr double kActiveThreshold = 1e-2;

// One set of experts sharing one routing decision (see the file header).
struct ExpertSite {
  std::string name;                    // "group 0 (layers 0-3)" or "layer 2"
  std::vector<int> layers;             // the transformer blocks whose experts these are
  int64_t experts = 0;                 // N
  int64_t sqrt_n = 0;                  // MONET and PEER: expert e is (e / √N, e % √N); SMoE: 0
  std::string label(int64_t e) const;  // "(3, 17)" or "5"
};

// Sparse per-token scores, as every expert layer reports them (monet/expert_layer.h).
using moe::TokenScores;

// The expert view of a trained transformer: its spliced hooks that have experts (sparse
// autoencoders, sae/sae.h: one site each) when there are any, else its feed-forward layers, which
// must all have experts (every layer implements moe::ExpertLayer); consecutive layers that share a
// routing form one site.
class ExpertModel {
 public:
  // `kind` is the model's model.ffn.kind, for reports. Errors when a layer has no experts.
  ExpertModel(nn::Transformer& model, std::string kind);
  const std::string& kind() const { return kind_; }
  const std::vector<ExpertSite>& sites() const { return sites_; }
  nn::Transformer& model() const { return model_; }

  // Scores of site `s` for every token of the model's last forward pass.
  TokenScores scores(size_t s) const;
  // Removes exactly these experts (flat indices) from every layer of site `s`, replacing any
  // earlier removal there; {} restores the site. See the definition of removal in experts.cpp.
  void remove(size_t s, const std::vector<int64_t>& experts);
  void restore();  // every site

 private:
  nn::Transformer& model_;
  std::string kind_;
  std::vector<std::vector<moe::ExpertLayer*>> site_layers_;  // [site]: its layers
  std::vector<ExpertSite> sites_;
};

// Where a token is: its domain and its position in that domain's token vector.
struct ContextRef {
  float score = 0;
  int32_t domain = 0;
  int64_t offset = 0;
};
// The order of contexts: higher score first; ties by lower domain, then lower offset.
bool better_context(const ContextRef& a, const ContextRef& b);

// The K best contexts of every expert, kept while streaming: a K-entry min-heap per expert, so a
// push costs O(1) when it cannot enter and O(log K) when it does.
class StreamingTopK {
 public:
  StreamingTopK(int64_t experts = 0, int64_t k = 0);
  void push(int64_t expert, const ContextRef& c);
  std::vector<ContextRef> best(int64_t expert) const;  // better_context order, ≤ K entries
  int64_t k() const { return k_; }

 private:
  int64_t k_;
  std::vector<std::vector<ContextRef>> heaps_;
};

// What one site's experts did over the streamed data.
struct SiteStats {
  ExpertSite site;
  std::vector<int64_t> tokens;                    // [domain] tokens streamed
  std::vector<std::vector<double>> mass;          // [domain][expert] Σ score
  std::vector<std::vector<int64_t>> active;       // [domain][expert] tokens with score > 1e-2
  std::vector<std::vector<int64_t>> active_hist;  // [domain][n] tokens with n active experts
  StreamingTopK top;
  // Routing probability: mean score over the domain's tokens, [domain][expert].
  std::vector<std::vector<double>> probabilities() const;
};

struct ExpertStats {
  std::string kind;
  std::vector<std::string> domains;
  std::vector<SiteStats> sites;
};

struct CollectOptions {
  int64_t batch = 16;
  int64_t context = 0;       // T; 0 = the model's
  int64_t windows = 0;       // windows of T tokens per domain, evenly spread; 0 = all
  int64_t top_k = 10;        // contexts kept per expert (0 = none)
  int layer = -1;            // only the site holding this layer; -1 = every site
  bool train_split = false;  // stream each domain's train split instead of its val split
};
// Streams each domain's split through the model (eval mode, no grad) in evaluation windows
// (train/corpus.h eval_batches: every token once) and accumulates every site's statistics.
// `progress(done, total)` is called after each batch.
ExpertStats collect_expert_stats(ExpertModel& em, const std::vector<Domain>& domains,
                                 const CollectOptions& opt,
                                 const std::function<void(int, int)>& progress = nullptr);
const std::vector<int32_t>& split_tokens(const Domain& d, bool train_split);

// A context as text: the bytes of `window` tokens either side of `offset`, the token itself
// widened to its whole UTF-8 character, the ends trimmed to character boundaries.
struct ContextText {
  std::string left, token, right;
};
// Byte tokens when `tokenizer` is null (the window in bytes, widened to whole UTF-8 characters);
// else the tokens decoded, window / 4 of them either side.
ContextText context_text(const std::vector<int32_t>& tokens, int64_t offset, int64_t window,
                         const Tokenizer* tokenizer = nullptr);

struct ReportOptions {
  int64_t window = 40;  // bytes of context either side of a highlighted token
  std::string title;    // shown at the top of the HTML page
  std::string source;   // checkpoint and data, for the record
  bool train_split = false;
  const Tokenizer* tokenizer = nullptr;  // how tokens become text; null: bytes
  int64_t max_experts = 0;  // experts listed per site, the most routed-to first; 0: every used one
};
// experts.json (every site, every used expert: routing probabilities, active counts, contexts)
// and experts.html (self-contained: sortable expert table, contexts on click, active-experts
// histogram, per-domain heat map) in `out`, which is created.
void write_expert_report(const ExpertStats& stats, const std::vector<Domain>& domains,
                         const std::filesystem::path& out, const ReportOptions& opt);
// A few lines per site for the terminal: tokens, mean active experts, specialised experts.
std::string expert_summary(const ExpertStats& stats);

}  // namespace monet::interp
