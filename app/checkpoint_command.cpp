#include "app/checkpoint_command.h"

#include <fmt/format.h>

#include "app/command.h"
#include "sae/sae_io.h"
#include "train/checkpoint.h"
#include "train/model.h"
#include "train/tokenizer.h"

namespace monet::app {

namespace fs = std::filesystem;

void add_checkpoint_options(CLI::App* cmd, CheckpointArgs& a, const std::string& default_out) {
  cmd->add_option("--ckpt", a.ckpt, "run or checkpoint folder")->required();
  cmd->add_option("--data", a.data, "corpus folder")->default_str("run.data");
  cmd->add_option("--out", a.out, "output folder")->default_str(default_out);
  cmd->add_option("--batch", a.batch, "windows per forward pass")
      ->check(positive())
      ->capture_default_str();
  add_device_option(cmd, a.device);
  add_sae_options(cmd, a.sae);
}

fs::path LoadedRun::out_dir(const CheckpointArgs& a, const std::string& name) const {
  return a.out.empty() ? run_dir / name : fs::path(a.out);
}

LoadedRun load_run(const CheckpointArgs& a) {
  LoadedRun l;
  l.model = load_model(a.ckpt, &l.cfg, parse_device(a.device), note_to_stderr);
  l.run_dir = run_folder(resolve_checkpoint(a.ckpt));
  const auto saes = sae::splice_saes(*l.model, a.sae.files, a.sae.error_term, note_to_stderr);
  std::string kind = l.cfg.model.ffn.kind->name;
  if (!saes.empty())
    kind += fmt::format(" + {} SAE{}{}", saes.size(), saes.size() == 1 ? "" : "s",
                        a.sae.error_term ? " (error term added back)" : "");
  l.experts = std::make_unique<interp::ExpertModel>(*l.model, kind);
  l.tokenizer = load_tokenizer(a.ckpt);
  l.corpus = Corpus::load(a.data.empty() ? l.cfg.run.data : a.data, *l.tokenizer);
  return l;
}

}  // namespace monet::app
