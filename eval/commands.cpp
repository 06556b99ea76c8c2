// `monet experts`, `monet mask` and `monet purge` (see commands.h).
#include "eval/commands.h"

#include <fmt/format.h>

#include <chrono>
#include <filesystem>

#include "eval/experts.h"
#include "eval/mask.h"
#include "eval/purge.h"
#include "eval/timing.h"
#include "train/checkpoint.h"
#include "train/fileio.h"
#include "train/model.h"
#include "train/progress.h"
#include "train/tokenizer.h"

namespace monet::interp {

namespace fs = std::filesystem;

namespace {

struct Loaded {
  Config cfg;
  std::shared_ptr<nn::Transformer> model;
  Corpus corpus;
  fs::path run_dir;  // where default outputs go
};

Loaded load(const CommonArgs& a) {
  Loaded l;
  l.model = load_model(a.ckpt, &l.cfg, parse_device(a.device.empty() ? "cpu" : a.device));
  const fs::path ckpt = resolve_checkpoint(a.ckpt);
  const std::string name = ckpt.filename().string();
  l.run_dir = name == "checkpoint" || name == "checkpoint.prev" ? ckpt.parent_path() : ckpt;
  l.corpus = Corpus::load(a.data.empty() ? l.cfg.run.data : a.data, ByteTokenizer());
  return l;
}

fs::path out_dir(const CommonArgs& a, const Loaded& l, const std::string& name) {
  return a.out.empty() ? l.run_dir / name : fs::path(a.out);
}

}  // namespace

int run_experts_command(const ExpertsArgs& a) {
  const auto t0 = std::chrono::steady_clock::now();
  Loaded l = load(a);
  ExpertModel em(*l.model);
  CollectOptions co;
  co.batch = a.batch;
  co.windows = a.windows;
  co.top_k = a.top;
  co.layer = a.layer;
  co.train_split = a.train_split;
  Progress bar(1, 0, stderr);
  int last = -1;
  ExpertStats st = collect_expert_stats(em, l.corpus.domains(), co, [&](int done, int total) {
    // A live bar on a terminal; in a log, one line per tenth.
    if (bar.is_tty() || done * 10 / total != last) bar.bar(done, total, "batches");
    last = done * 10 / total;
  });
  const fs::path out = out_dir(a, l, "experts");
  ReportOptions ro;
  ro.window = a.window;
  ro.train_split = a.train_split;
  ro.title = fmt::format("Experts of {} ({})", l.run_dir.filename().string(), em.kind());
  ro.source = fmt::format("checkpoint {} | data {}", fs::absolute(a.ckpt).string(),
                          l.corpus.folder().string());
  write_expert_report(st, l.corpus.domains(), out, ro);
  fmt::print("{}", expert_summary(st));
  fmt::print(stderr, "experts: wrote {} and {} in {:.1f} s\n", (out / "experts.html").string(),
             (out / "experts.json").string(), seconds_since(t0));
  return 0;
}

int run_mask_command(const MaskArgs& a) {
  const auto t0 = std::chrono::steady_clock::now();
  Loaded l = load(a);
  ExpertModel em(*l.model);
  MaskOptions mo;
  mo.domain = a.domain;
  mo.rule = parse_rule(a.rule);
  mo.select_windows = a.select_windows;
  mo.eval_windows = a.eval_windows;
  mo.batch = a.batch;
  mo.control = a.control;
  mo.seed = a.seed;
  MaskResult r = run_mask(em, l.corpus.domains(), mo, [&](const std::string& what) {
    fmt::print(stderr, "mask: {} ({:.0f} s)\n", what, seconds_since(t0));
  });
  const fs::path out = out_dir(a, l, "mask_" + a.domain);
  write_mask_outputs(r, out);
  fmt::print("{}", mask_markdown(r));
  fmt::print(stderr, "mask: wrote {}/mask.{{md,json,svg}} in {:.1f} s\n", out.string(),
             seconds_since(t0));
  return 0;
}

int run_purge_command(const PurgeArgs& a) {
  const auto t0 = std::chrono::steady_clock::now();
  Loaded l = load(a);
  ExpertModel em(*l.model);
  const std::vector<int32_t> text = ByteTokenizer().encode(read_file(a.text));
  const std::vector<double> score = read_token_scores(a.score);
  PurgeOptions po;
  if (!a.thresholds.empty()) po.thresholds = a.thresholds;
  po.batch = a.batch;
  po.text_windows = a.text_windows;
  po.eval_windows = a.eval_windows;
  PurgeResult r = run_purge(em, l.corpus.domains(), text, score,
                            fs::path(a.text).filename().string(), po, [&](const std::string& what) {
                              fmt::print(stderr, "purge: {} ({:.0f} s)\n", what, seconds_since(t0));
                            });
  const fs::path out = out_dir(a, l, "purge");
  write_purge_outputs(r, out);
  fmt::print("{}", purge_markdown(r));
  fmt::print(stderr, "purge: wrote {}/purge.{{md,json}} in {:.1f} s\n", out.string(),
             seconds_since(t0));
  return 0;
}

}  // namespace monet::interp
