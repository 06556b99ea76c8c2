// `monet eval`: validation loss and bits per byte of a checkpoint, per domain.
#include <fmt/format.h>

#include <filesystem>

#include "app/command.h"
#include "sae/sae_io.h"
#include "train/checkpoint.h"
#include "train/evaluate.h"
#include "train/model.h"
#include "train/tokenizer.h"
#include "util/fileio.h"
#include "util/progress.h"

namespace monet::app {

namespace fs = std::filesystem;

Command add_eval_command(CLI::App& app) {
  struct Args {
    std::string ckpt, data, device;
    int64_t batch = 16, windows = 0;
    bool json = false;
    GemmArgs gemm;
    SaeSpliceArgs sae;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("eval", "validation loss and bits per byte of a checkpoint");
  cmd->add_option("--ckpt", a->ckpt, "run or checkpoint folder")->required();
  cmd->add_option("--data", a->data, "a corpus folder or a text file")->default_str("run.data");
  cmd->add_option("--batch", a->batch, "windows per forward pass")
      ->check(positive())
      ->capture_default_str();
  cmd->add_option("--windows", a->windows, "at most this many windows per domain (0: all)")
      ->check(at_least(0))
      ->capture_default_str();
  cmd->add_flag("--json", a->json, "print the results as JSON, at full precision (for scripts)");
  add_device_option(cmd, a->device);
  add_gemm_options(cmd, a->gemm, "the checkpoint's run");
  add_sae_options(cmd, a->sae);
  return {cmd, [a] {
            Config cfg;
            const RunConfig run = checkpoint_run(a->ckpt, a->device, a->gemm);  // checked first
            auto model = load_model(a->ckpt, &cfg, usable_device(run.device), note_to_stderr);
            sae::splice_saes(*model, a->sae.files, a->sae.error_term, note_to_stderr);
            const GemmScope gemm(gemm_mode_of(run));
            const std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(a->ckpt);
            const Tokenizer& tok = *tokenizer;
            const std::string folder = a->data.empty() ? cfg.run.data : a->data;
            // Live on a terminal; in a log, a line every few seconds and one per domain.
            Progress bar(1, 0, stderr);
            auto progress = [&](int64_t done, int64_t total, const std::string& name) {
              bar.bar(done, total, name + " batches");
            };
            MONET_CHECK(fs::exists(folder),
                        "data '{}' does not exist (from {}); give a corpus folder or a text file "
                        "with --data FOLDER",
                        folder, fs::current_path().string());
            std::vector<DomainEval> ev;
            if (fs::is_directory(folder)) {
              ev = evaluate(*model, Corpus::load(folder, tok).domains(), a->batch,
                            cfg.model.context, a->windows, progress, tok);
            } else {  // one text file
              std::vector<int32_t> ids = tok.encode(read_file(folder));
              ev.push_back(evaluate_tokens(*model, fs::path(folder).filename().string(), ids,
                                           a->batch, cfg.model.context, a->windows, progress, tok));
            }
            if (a->json)
              fmt::print("{}\n", nlohmann::json{{"checkpoint", a->ckpt},
                                                {"data", folder},
                                                {"sae", a->sae.files},
                                                {"sae_error_term", a->sae.error_term},
                                                {"results", eval_json(ev)}}
                                     .dump(2));
            else
              fmt::print("{}", eval_markdown(ev));
            return 0;
          }};
}

}  // namespace monet::app
