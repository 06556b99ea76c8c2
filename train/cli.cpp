// The `monet` command-line program.
//   monet train --config FILE.json [--out DIR] [--set key=value ...] | --resume DIR
//   monet eval --ckpt DIR [--data FOLDER]
//   monet sample --ckpt DIR --prompt TEXT [--tokens N --temperature T --top-k K --seed S]
//   monet table [--out DIR] [--quick] [--d D] [--sqrt-n 16,32,...] [--kinds dense,smoe,...]
//               [--set KIND.KEY=VALUE ...] [--device cpu|cuda]   (the complexity table, eval/table.h)
//   monet experts --ckpt DIR [--data FOLDER] [--layer L] [--top K] [--out DIR]   (eval/commands.h)
//   monet mask --ckpt DIR --domain NAME|all [--rule ratio:2] [--out DIR]
//   monet purge --ckpt DIR --text FILE --score FILE --threshold R [--out DIR]
//   monet bench --config FILE [--config FILE2 ...] [--steps N] [--warmup W] [--rounds R] [--vs-torch]
//               [--set key=value ...]   (the training step measured, eval/bench_cmd.h)
//   monet demo        (the core's smoke test: an MLP learns XOR with SGD)
// Every error ends the program with one line on stderr and exit status 1.
#include <cblas.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <filesystem>

#include "core/error.h"
#include "train/checkpoint.h"
#include "train/demo.h"
#include "train/fileio.h"
#include "train/model.h"
#include "train/evaluate.h"
#include "train/progress.h"
#include "train/sample.h"
#include "train/tokenizer.h"
#include "train/trainer.h"
#include "eval/table.h"
#include "eval/commands.h"
#include "eval/bench_cmd.h"

namespace fs = std::filesystem;
using namespace monet;

namespace {

struct Args {
  std::string config, out, resume, ckpt, data, prompt, device;
  std::vector<std::string> sets;
  int64_t stop_at = -1, tokens = 200, top_k = 0, batch = 16, windows = 0;
  double temperature = 0.8;
  uint64_t seed = 0;
  int demo_steps = 300;
};

void print_eval(const std::vector<DomainEval>& ev) {
  fmt::print("| domain | val loss (nats/token) | bits per byte | tokens |\n|---|---:|---:|---:|\n");
  for (const DomainEval& e : ev) fmt::print("| {} | {:.4f} | {:.4f} | {} |\n", e.domain, e.loss, e.bpb, e.tokens);
}

int run_train(const Args& a) {
  TrainOptions opt;
  if (!a.resume.empty()) {
    opt.resume = true;
    opt.out_dir = a.resume;
    opt.config = resume_config(a.resume, a.sets);
  } else {
    MONET_CHECK(!a.config.empty(), "train: give --config FILE.json (or --resume DIR)");
    opt.config = load_config(a.config, a.sets);
    opt.out_dir = a.out.empty() ? fs::path("runs") / fs::path(a.config).stem() : fs::path(a.out);
  }
  if (!a.device.empty()) opt.config.run.device = a.device;
  opt.stop_at = a.stop_at;
  TrainResult r = train(opt);
  if (!r.eval.empty()) print_eval(r.eval);
  return 0;
}

int run_eval(const Args& a) {
  Config cfg;
  auto model = load_model(a.ckpt, &cfg, parse_device(a.device.empty() ? "cpu" : a.device));
  ByteTokenizer tok;
  const std::string folder = a.data.empty() ? cfg.run.data : a.data;
  std::vector<DomainEval> ev;
  if (fs::is_directory(folder)) {
    ev = evaluate(*model, Corpus::load(folder, tok).domains(), a.batch, cfg.model.context, a.windows);
  } else {  // one text file
    std::vector<int32_t> ids = tok.encode(read_file(folder));
    ev.push_back(evaluate_tokens(*model, fs::path(folder).filename().string(), ids, a.batch,
                                 cfg.model.context, a.windows));
  }
  print_eval(ev);
  return 0;
}

struct TableArgs {
  TableOptions opt;
  std::string out, device;
  bool quick = false;
};

int run_table(TableArgs t) {
  TableOptions o = t.quick ? TableOptions::quick() : TableOptions();
  // Explicit flags win over the --quick defaults: copy the ones that differ from a default run.
  const TableOptions def;
  if (t.opt.d != def.d) o.d = t.opt.d;
  if (t.opt.sqrt_n != def.sqrt_n) o.sqrt_n = t.opt.sqrt_n;
  if (t.opt.peer_extra_sqrt_n != def.peer_extra_sqrt_n) o.peer_extra_sqrt_n = t.opt.peer_extra_sqrt_n;
  if (t.opt.kinds != def.kinds) o.kinds = t.opt.kinds;
  if (t.opt.batch != def.batch) o.batch = t.opt.batch;
  if (t.opt.context != def.context) o.context = t.opt.context;
  if (t.opt.repeats != def.repeats) o.repeats = t.opt.repeats;
  if (t.opt.warmup != def.warmup) o.warmup = t.opt.warmup;
  o.max_memory_gib = t.opt.max_memory_gib;
  o.sets = t.opt.sets;
  o.device = parse_device(t.device.empty() ? "cpu" : t.device);
  Progress bar(1, 0, stderr);
  TableResult r = run_table(o, [&](int done, int total, const std::string& what) {
    bar.bar(done, total, what);
  });
  fmt::print("{}", table_markdown(r));
  if (!t.out.empty()) {
    write_table_outputs(r, t.out);
    fmt::print(stderr, "table: wrote {}/table.{{md,csv,json}} and *_vs_n.svg\n", t.out);
  }
  return 0;
}

int run_sample(const Args& a) {
  auto model = load_model(a.ckpt, nullptr, parse_device(a.device.empty() ? "cpu" : a.device));
  ByteTokenizer tok;
  SampleOptions so{a.tokens, a.temperature, a.top_k, a.seed};
  fmt::print("{}\n", tok.decode(sample(*model, tok.encode(a.prompt), so)));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"monet: Mixture-of-Experts layers (dense, SMoE, PEER, MONET-HD/VD), trained and measured"};
  app.set_version_flag("--version", std::string("monet ") + MONET_VERSION);
  app.require_subcommand(0, 1);
  Args a;

  CLI::App* train = app.add_subcommand("train", "train a model from a JSON config on a text corpus");
  train->add_option("--config", a.config, "the run configuration (configs/*.json)");
  train->add_option("--out", a.out, "output folder (default runs/<config name>)");
  train->add_option("--set", a.sets, "override a config key: --set run.steps=100 (repeatable)");
  train->add_option("--resume", a.resume, "continue the run in this folder from its checkpoint");
  train->add_option("--stop-at", a.stop_at, "stop with a checkpoint after this many steps");
  train->add_option("--device", a.device, "cpu or cuda (overrides run.device)");

  CLI::App* eval = app.add_subcommand("eval", "validation loss and bits per byte of a checkpoint");
  eval->add_option("--ckpt", a.ckpt, "run or checkpoint folder")->required();
  eval->add_option("--data", a.data, "a corpus folder or a text file (default: the run's corpus)");
  eval->add_option("--batch", a.batch, "windows per forward pass")->check(CLI::PositiveNumber);
  eval->add_option("--windows", a.windows, "at most this many windows per domain (0: all)");
  eval->add_option("--device", a.device, "cpu or cuda");

  CLI::App* samp = app.add_subcommand("sample", "generate text from a checkpoint (KV cache)");
  samp->add_option("--ckpt", a.ckpt, "run or checkpoint folder")->required();
  samp->add_option("--prompt", a.prompt, "the text to continue")->required();
  samp->add_option("--tokens", a.tokens, "tokens to generate")->check(CLI::PositiveNumber);
  samp->add_option("--temperature", a.temperature, "0 for greedy")->check(CLI::NonNegativeNumber);
  samp->add_option("--top-k", a.top_k, "sample among the k most likely (0: all)");
  samp->add_option("--seed", a.seed, "random seed");
  samp->add_option("--device", a.device, "cpu or cuda");

  BenchOptions bo;
  CLI::App* bench = app.add_subcommand("bench", "time the training step (tokens/s, GFLOP/s, memory); --vs-torch against the PyTorch twin");
  bench->add_option("--config", bo.configs, "run configuration(s) (configs/bench_*.json), one row each")->required();
  bench->add_option("--set", bo.sets, "override a key of every config: --set model.d=256 (repeatable)");
  bench->add_option("--steps", bo.steps, "timed steps per round")->check(CLI::PositiveNumber);
  bench->add_option("--warmup", bo.warmup, "untimed steps first, each round")->check(CLI::NonNegativeNumber);
  bench->add_option("--rounds", bo.rounds, "rounds per side (C++ and PyTorch alternate)")->check(CLI::PositiveNumber);
  bench->add_flag("--vs-torch", bo.vs_torch, "also run eval/reference/torch_bench.py and print the ratio");
  bench->add_option("--python", bo.python, "the interpreter with torch (default /usr/bin/python3)");
  bench->add_option("--torch-script", bo.torch_script, "the PyTorch twin (default eval/reference/torch_bench.py)");

  TableArgs ta;
  CLI::App* table = app.add_subcommand("table", "measure params, time, FLOPs and memory of every layer kind as N grows");
  table->add_option("--out", ta.out, "write table.md/.csv/.json and the log-log plots here");
  table->add_flag("--quick", ta.quick, "the small sweep (√N 16..64, 256 tokens, 2 repeats) for CI");
  table->add_option("--d", ta.opt.d, "model width")->check(CLI::PositiveNumber);
  table->add_option("--sqrt-n", ta.opt.sqrt_n, "the √N values to sweep (N = √N²)")->delimiter(',');
  table->add_option("--peer-sqrt-n", ta.opt.peer_extra_sqrt_n, "further √N values for PEER only")->delimiter(',');
  table->add_option("--kinds", ta.opt.kinds, "layer kinds: dense,smoe,peer,monet_hd,monet_vd")->delimiter(',');
  table->add_option("--batch", ta.opt.batch, "B")->check(CLI::PositiveNumber);
  table->add_option("--context", ta.opt.context, "T")->check(CLI::PositiveNumber);
  table->add_option("--repeats", ta.opt.repeats, "timed repeats (the median is reported)")->check(CLI::PositiveNumber);
  table->add_option("--warmup", ta.opt.warmup, "untimed steps first")->check(CLI::NonNegativeNumber);
  table->add_option("--max-memory-gib", ta.opt.max_memory_gib, "skip configurations predicted above this (default 60% of available)");
  table->add_option("--set", ta.opt.sets, "a layer setting: --set smoe.dim=32 (repeatable)");
  table->add_option("--device", ta.device, "cpu or cuda");

  // Interpretability (eval/commands.h): expert report, domain masking, purging on a score.
  interp::ExpertsArgs xa;
  interp::MaskArgs ma;
  interp::PurgeArgs pa;
  CLI::App* experts = app.add_subcommand(
      "experts", "per-expert top contexts and per-domain routing: experts.html + experts.json");
  CLI::App* mask = app.add_subcommand(
      "mask", "remove the experts specialised to a domain; val loss per domain before and after");
  CLI::App* purge = app.add_subcommand(
      "purge", "remove the experts correlated with a per-token score; loss change");
  for (auto [cmd, c] : {std::pair{experts, static_cast<interp::CommonArgs*>(&xa)},
                        std::pair{mask, static_cast<interp::CommonArgs*>(&ma)},
                        std::pair{purge, static_cast<interp::CommonArgs*>(&pa)}}) {
    cmd->add_option("--ckpt", c->ckpt, "run or checkpoint folder")->required();
    cmd->add_option("--data", c->data, "corpus folder (default: the run's)");
    cmd->add_option("--out", c->out,
                    "output folder (default: <run>/experts, <run>/mask_<domain>, <run>/purge)");
    cmd->add_option("--batch", c->batch, "windows per forward pass")->check(CLI::PositiveNumber);
    cmd->add_option("--device", c->device, "cpu or cuda");
  }
  experts->add_option("--layer", xa.layer, "only the routing site of this layer (default: all)");
  experts->add_option("--top", xa.top, "top contexts kept per expert")
      ->check(CLI::NonNegativeNumber);
  experts->add_option("--windows", xa.windows, "windows per domain, evenly spread (0: all)");
  experts->add_option("--context-bytes", xa.window, "bytes shown either side of a token")
      ->check(CLI::NonNegativeNumber);
  experts->add_flag("--train-split", xa.train_split, "stream the train split instead of val");
  mask->add_option("--domain", ma.domain, "the domain whose experts are removed, or all")
      ->required();
  mask->add_option("--rule", ma.rule,
                   "selection rule: ratio:R (p(domain) >= R x p(second domain))");
  mask->add_option("--select-windows", ma.select_windows,
                   "train windows per domain for the routing probabilities")
      ->check(CLI::PositiveNumber);
  mask->add_option("--windows", ma.eval_windows, "val windows per domain for the losses (0: all)");
  mask->add_flag("--control", ma.control, "also remove as many random experts (a control row)");
  mask->add_option("--seed", ma.seed, "seed of the random control");
  purge->add_option("--text", pa.text, "the text the score belongs to")->required();
  purge->add_option("--score", pa.score, "one number per byte of --text, whitespace-separated")
      ->required();
  purge->add_option("--threshold", pa.thresholds,
                    "remove experts with Pearson r >= R (repeatable; default 0.2 0.1 0.05)");
  purge->add_option("--text-windows", pa.text_windows,
                    "windows of the text, evenly spread (0: all)");
  purge->add_option("--windows", pa.eval_windows, "val windows per domain for the losses (0: all)");

  CLI::App* demo = app.add_subcommand("demo", "train a tiny MLP on a synthetic task with the core and print its loss");
  demo->add_option("--steps", a.demo_steps, "SGD steps")->check(CLI::PositiveNumber);
  demo->add_option("--seed", a.seed, "random seed");

  CLI11_PARSE(app, argc, argv);
  try {
    fmt::print(stderr, "monet {} | OpenBLAS {} ({} threads)\n", MONET_VERSION,
               openblas_get_corename(), openblas_get_num_threads());
    if (app.got_subcommand(train)) return run_train(a);
    if (app.got_subcommand(eval)) return run_eval(a);
    if (app.got_subcommand(samp)) return run_sample(a);
    if (app.got_subcommand(table)) return run_table(ta);
    if (app.got_subcommand(experts)) return interp::run_experts_command(xa);
    if (app.got_subcommand(mask)) return interp::run_mask_command(ma);
    if (app.got_subcommand(purge)) return interp::run_purge_command(pa);
    if (app.got_subcommand(bench)) return run_bench_command(bo);
    if (app.got_subcommand(demo)) {
      auto r = run_xor_demo(a.demo_steps, a.seed, [&](int step, double loss) {
        if (step % 25 == 0 || step == a.demo_steps - 1) fmt::print("step {:4d}  loss {:.4f}\n", step, loss);
      });
      fmt::print("demo: loss {:.4f} -> {:.4f}, accuracy {:.1f}%\n", r.first_loss, r.final_loss, 100 * r.accuracy);
      return 0;
    }
    fmt::print("{}", app.help());
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "monet: error: {}\n", e.what());
    return 1;
  }
}
