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
    std::string ckpt, prompt, device = "cpu";
    SampleOptions so;
    GemmArgs gemm;
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
  add_device_option(cmd, a->device);
  add_gemm_options(cmd, a->gemm, "the checkpoint's run");
  return {cmd, [a] {
            Config cfg;
            auto model = load_model(a->ckpt, &cfg, parse_device(a->device));
            const GemmScope gemm(checkpoint_gemm_mode(a->gemm, cfg.run));
            ByteTokenizer tok;
            auto note = [](const std::string& s) { fmt::print(stderr, "sample: {}\n", s); };
            fmt::print("{}\n", tok.decode(sample(*model, tok.encode(a->prompt), a->so, note)));
            return 0;
          }};
}

}  // namespace monet::app
