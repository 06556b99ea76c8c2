#include "train/corpus.h"

#include <algorithm>
#include <map>

#include "core/error.h"
#include "util/fileio.h"

namespace monet {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kTrainSuffix = ".train.txt", kValSuffix = ".val.txt";

// Domain name -> (train file, val file); either may be empty when missing.
std::map<std::string, std::pair<fs::path, fs::path>> find_domain_files(const fs::path& folder) {
  std::map<std::string, std::pair<fs::path, fs::path>> files;
  for (const fs::directory_entry& e : fs::directory_iterator(folder)) {
    if (!e.is_regular_file()) continue;
    const std::string name = e.path().filename().string();
    for (auto [suffix, is_train] : {std::pair{kTrainSuffix, true}, std::pair{kValSuffix, false}}) {
      if (name.size() > suffix.size() && name.ends_with(suffix)) {
        auto& slot = files[name.substr(0, name.size() - suffix.size())];
        (is_train ? slot.first : slot.second) = e.path();
      }
    }
  }
  return files;
}

std::vector<int32_t> load_split(const fs::path& path, const Tokenizer& tokenizer) {
  std::vector<int32_t> ids = tokenizer.encode(read_file(path));
  MONET_CHECK(!ids.empty(), "corpus: '{}' is empty", path.string());
  return ids;
}

}  // namespace

Corpus Corpus::load(const fs::path& folder, const Tokenizer& tokenizer) {
  std::error_code ec;
  MONET_CHECK(fs::exists(folder, ec),
              "corpus folder '{}' does not exist (from {}); give the data with --data FOLDER, "
              "or --set run.data=FOLDER where the command has no --data",
              folder.string(), fs::current_path(ec).string());
  MONET_CHECK(fs::is_directory(folder, ec), "corpus path '{}' is not a folder", folder.string());
  const auto files = find_domain_files(folder);
  MONET_CHECK(!files.empty(), "corpus folder '{}' has no <domain>{} / <domain>{} files",
              folder.string(), kTrainSuffix, kValSuffix);

  Corpus c;
  c.folder_ = folder;
  for (const auto& [name, paths] : files) {
    for (auto [path, suffix] :
         {std::pair{paths.first, kTrainSuffix}, std::pair{paths.second, kValSuffix}}) {
      MONET_CHECK(!path.empty(), "corpus: missing '{}' (every domain needs a train and a val file)",
                  (folder / (name + std::string(suffix))).string());
    }
    c.domains_.push_back(
        {name, load_split(paths.first, tokenizer), load_split(paths.second, tokenizer)});
    const auto& train = c.domains_.back().train;
    c.train_stream_.insert(c.train_stream_.end(), train.begin(), train.end());
  }
  return c;
}

const Domain& Corpus::domain(std::string_view name) const {
  for (const Domain& d : domains_) {
    if (d.name == name) return d;
  }
  std::vector<std::string> names;
  for (const Domain& d : domains_) names.push_back(d.name);
  throw Error(fmt::format("corpus '{}' has no domain '{}' (domains: {})", folder_.string(), name,
                          fmt::join(names, ", ")));
}

int64_t Corpus::val_tokens() const {
  int64_t n = 0;
  for (const Domain& d : domains_) n += static_cast<int64_t>(d.val.size());
  return n;
}

// ---- training batches ----

Batcher::Batcher(std::vector<int32_t> tokens, uint64_t seed)
    : tokens_(std::move(tokens)), gen_(seed) {}

std::pair<Tensor, Tensor> Batcher::next(int64_t B, int64_t T, Device device) {
  MONET_CHECK(B > 0 && T > 0, "batcher: batch {} and length {} must be positive", B, T);
  const int64_t n = tokens();
  MONET_CHECK(T + 1 <= n, "batcher: a window of T + 1 = {} tokens does not fit in {} tokens", T + 1,
              n);
  std::vector<int32_t> in(static_cast<size_t>(B * T)), out(in.size());
  for (int64_t b = 0; b < B; ++b) {
    const int32_t* w = tokens_.data() + gen_.randint(n - T);  // start in [0, n - T - 1]
    std::copy(w, w + T, in.begin() + b * T);
    std::copy(w + 1, w + T + 1, out.begin() + b * T);
  }
  ++batches_;
  return {from_vector(in, {B, T}, device), from_vector(out, {B, T}, device)};
}

void check_batcher_state(const BatcherState& s) {
  MONET_CHECK(s.batches >= 0, "batcher: negative batch count {} in saved state", s.batches);
  MONET_CHECK(s.rng != (std::array<uint64_t, 4>{}), "batcher: all-zero generator state");
}

void Batcher::set_state(const BatcherState& s) {
  check_batcher_state(s);
  gen_.set_state(s.rng);
  batches_ = s.batches;
}

// ---- evaluation windows ----

std::vector<EvalBatch> eval_batches(const std::vector<int32_t>& tokens, int64_t B, int64_t T,
                                    int64_t max_windows, Device device) {
  MONET_CHECK(B > 0 && T > 0, "eval windows: batch {} and length {} must be positive", B, T);
  const int64_t n = static_cast<int64_t>(tokens.size());
  MONET_CHECK(n >= T + 1, "eval windows: {} tokens are fewer than a window of T + 1 = {}", n,
              T + 1);
  const int64_t full = (n - 1) / T, rem = (n - 1) % T;
  const int64_t total = full + (rem > 0 ? 1 : 0);

  std::vector<int64_t> chosen;  // window indices, increasing
  const int64_t keep = max_windows > 0 ? std::min(max_windows, total) : total;
  for (int64_t i = 0; i < keep; ++i) chosen.push_back(i * total / keep);

  std::vector<EvalBatch> batches;
  for (size_t first = 0; first < chosen.size(); first += static_cast<size_t>(B)) {
    const int64_t rows = std::min<int64_t>(B, static_cast<int64_t>(chosen.size() - first));
    std::vector<int32_t> in(static_cast<size_t>(rows * T)), out(in.size());
    int64_t scored = 0;
    std::vector<int64_t> starts;
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t w = chosen[first + static_cast<size_t>(r)];
      const int64_t start = w < full ? w * T : n - 1 - T;
      starts.push_back(start);
      const int64_t skip = w < full ? 0 : T - rem;  // targets already scored by window full - 1
      for (int64_t t = 0; t < T; ++t) {
        in[r * T + t] = tokens[start + t];
        out[r * T + t] = t < skip ? kIgnoreTarget : tokens[start + t + 1];
      }
      scored += T - skip;
    }
    batches.push_back(
        {from_vector(in, {rows, T}, device), from_vector(out, {rows, T}, device), scored, starts});
  }
  return batches;
}

}  // namespace monet
