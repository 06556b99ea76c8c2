// `monet sample`: text generated from a checkpoint (KV cache).
#include <fmt/format.h>

#include "app/command.h"
#include "train/checkpoint.h"
#include "train/model.h"
#include "train/sample.h"
#include "train/tokenizer.h"

namespace monet::app {

Command add_sample_command(CLI::App& app) {
  struct Args {
    std::string ckpt, prompt, device;
    SampleOptions so;
    GemmArgs gemm;
    bool ids = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("sample", "generate text from a checkpoint (KV cache)");
  cmd->add_option("--ckpt", a->ckpt, "run or checkpoint folder")->required();
  cmd->add_option("--prompt", a->prompt, "the text to continue")->required();
  cmd->add_option("--tokens", a->so.tokens, "tokens to generate")
      ->check(positive())
      ->capture_default_str();
  cmd->add_option("--temperature", a->so.temperature, "0 for greedy")
      ->check(at_least(0))
      ->capture_default_str();
  cmd->add_option("--top-k", a->so.top_k, "sample among the k most likely (0: all)")
      ->check(at_least(0))
      ->capture_default_str();
  cmd->add_option("--seed", a->so.seed, "random seed")->capture_default_str();
  cmd->add_flag("--ids", a->ids, "also print the token ids (prompt and generated) on a line first");
  add_device_option(cmd, a->device);
  add_gemm_options(cmd, a->gemm, "the checkpoint's run");
  return {cmd, [a] {
            Config cfg;
            const RunConfig run = checkpoint_run(a->ckpt, a->device, a->gemm);  // checked first
            auto model = load_model(a->ckpt, &cfg, usable_device(run.device), note_to_stderr);
            const GemmScope gemm(gemm_mode_of(run));
            const std::unique_ptr<Tokenizer> tok = load_tokenizer(a->ckpt);
            auto note = [](const std::string& s) { fmt::print(stderr, "sample: {}\n", s); };
            std::vector<int32_t> prompt = tok->encode(a->prompt);
            if (tok->bos_id() >= 0) prompt.insert(prompt.begin(), tok->bos_id());  // as trained
            const std::vector<int32_t> ids = sample(*model, prompt, a->so, note);
            if (a->ids) fmt::print("{}\n", fmt::join(ids, " "));
            fmt::print("{}\n", tok->decode(ids));
            return 0;
          }};
}

}  // namespace monet::app
