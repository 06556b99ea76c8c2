// `monet eval`: validation loss and bits per byte of a checkpoint, per domain.
#include <fmt/format.h>

#include <filesystem>

#include "app/command.h"
#include "train/checkpoint.h"
#include "train/evaluate.h"
#include "train/model.h"
#include "train/tokenizer.h"
#include "util/fileio.h"

namespace monet::app {

namespace fs = std::filesystem;

Command add_eval_command(CLI::App& app) {
  struct Args {
    std::string ckpt, data, device = "cpu";
    int64_t batch = 16, windows = 0;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("eval", "validation loss and bits per byte of a checkpoint");
  cmd->add_option("--ckpt", a->ckpt, "run or checkpoint folder")->required();
  cmd->add_option("--data", a->data, "a corpus folder or a text file")->default_str("run.data");
  cmd->add_option("--batch", a->batch, "windows per forward pass")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--windows", a->windows, "at most this many windows per domain (0: all)")
      ->capture_default_str();
  add_device_option(cmd, a->device);
  return {cmd, [a] {
            Config cfg;
            auto model = load_model(a->ckpt, &cfg, parse_device(a->device));
            ByteTokenizer tok;
            const std::string folder = a->data.empty() ? cfg.run.data : a->data;
            std::vector<DomainEval> ev;
            if (fs::is_directory(folder)) {
              ev = evaluate(*model, Corpus::load(folder, tok).domains(), a->batch,
                            cfg.model.context, a->windows);
            } else {  // one text file
              std::vector<int32_t> ids = tok.encode(read_file(folder));
              ev.push_back(evaluate_tokens(*model, fs::path(folder).filename().string(), ids,
                                           a->batch, cfg.model.context, a->windows));
            }
            fmt::print("{}", eval_markdown(ev));
            return 0;
          }};
}

}  // namespace monet::app
