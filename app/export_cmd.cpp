// `monet export`: a checkpoint written in the Hugging Face layout of the released MONET models
// (train/hf_checkpoint.h), so the authors' modelling code, or anything reading their layout,
// loads a model trained here.
#include <fmt/format.h>

#include <filesystem>

#include "app/command.h"
#include "train/checkpoint.h"
#include "train/hf_checkpoint.h"
#include "train/model.h"

namespace monet::app {

namespace fs = std::filesystem;

Command add_export_command(CLI::App& app) {
  struct Args {
    std::string ckpt, to = "hf", out, dtype = precisions().name(Precision::F32);
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "export", "write a MONET checkpoint in the Hugging Face layout of the released models");
  cmd->add_option("--ckpt", a->ckpt, "run or checkpoint folder")->required();
  cmd->add_option("--to", a->to, "the layout to write")
      ->check(CLI::IsMember({"hf"}))
      ->capture_default_str();
  cmd->add_option(
         "--dtype", a->dtype,
         fmt::format("the weights' type: {} (exact) or {} (as released)",
                     precisions().name(Precision::F32), precisions().name(Precision::BF16)))
      ->check(CLI::IsMember(precisions().names()))
      ->capture_default_str();
  cmd->add_option("--out", a->out, "the folder to create (must not exist)")->required();
  return {cmd, [a] {
            Config cfg;
            auto model = load_model(a->ckpt, &cfg, Device::cpu(), note_to_stderr);
            const fs::path spm = resolve_checkpoint(a->ckpt) / "tokenizer.model";
            const bool has_spm = fs::exists(spm);
            export_hf(*model, cfg.model, a->out,
                      precisions().parse(a->dtype, "--dtype") == Precision::BF16 ? DType::BF16
                                                                                 : DType::F32,
                      has_spm ? spm : fs::path());
            fmt::print("{}\n", a->out);
            fmt::print(stderr, "export: wrote {} ({}, {} parameters{})\n", a->out,
                       cfg.model.ffn.kind->name, model->num_parameters(),
                       has_spm ? ", tokenizer.model" : ", byte-level tokenizer.json");
            return 0;
          }};
}

}  // namespace monet::app
