// `monet finetune`: a pretrained checkpoint trained on instruction data (train/instruct.h),
// the loss on response tokens only, some parameter groups optionally frozen. The run is a
// `monet train` run whose config says where its weights start (finetune.init); it keeps the
// pretrained model's config and optimizer settings, with the fine-tuning defaults below on top.
#include <fmt/format.h>

#include <filesystem>

#include "app/run_command.h"
#include "monet/registry.h"
#include "train/checkpoint.h"
#include "train/hf_checkpoint.h"
#include "train/instruct.h"

namespace monet::app {

namespace fs = std::filesystem;

Command add_finetune_command(CLI::App& app, Communicator& comm) {
  struct Args : RunArgs {
    std::string ckpt, data = "data/toy4_instruct", out, families, freeze = "none";
    int64_t steps = 300, batch = 16;
    uint64_t seed = 0;
    double lr = 1e-3;
    bool no_aux = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "finetune", "fine-tune a checkpoint on instruction data (loss on the responses only)");
  cmd->add_option("--ckpt", a->ckpt, "the pretrained run or checkpoint folder");
  cmd->add_option("--data", a->data, "instruction data folder (train.jsonl, test.jsonl)")
      ->capture_default_str();
  cmd->add_option("--out", a->out, "output folder")->default_str("<ckpt run>_ft");
  cmd->add_option("--families", a->families, "train on these families only (comma list)")
      ->default_str("all");
  cmd->add_option("--freeze", a->freeze,
                  "parameter groups left untouched: none, or a comma list of routers, experts, "
                  "non-experts")
      ->capture_default_str();
  cmd->add_flag("--no-aux", a->no_aux, "leave the load-balancing losses out of the loss");
  cmd->add_option("--steps", a->steps, "fine-tuning steps")
      ->check(positive())
      ->capture_default_str();
  cmd->add_option("--batch", a->batch, "examples per step")
      ->check(positive())
      ->capture_default_str();
  cmd->add_option("--lr", a->lr, "peak learning rate (cosine to lr/10, warmup steps/20)")
      ->check(positive())
      ->capture_default_str();
  cmd->add_option("--seed", a->seed, "seed of the example draws (and routing noise)")
      ->capture_default_str();
  add_run_options(cmd, *a, "--steps");
  cmd->get_option("--ckpt")->excludes("--resume");
  return {cmd,
          [a, &comm] {
            return run_training(*a, comm, [&](const std::vector<std::string>& sets) {
              TrainOptions opt;
              if (a->ckpt.empty()) throw UsageError("give --ckpt PRETRAINED (or --resume DIR)");
              const fs::path ckpt = resolve_checkpoint(a->ckpt);
              MONET_CHECK(!is_hf_checkpoint(ckpt),
                          "finetune: '{}' is a Hugging Face folder; fine-tuning starts from a "
                          "checkpoint of `monet train`",
                          a->ckpt);
              try {  // before the config, so that the error names the option
                (void)moe::parse_freeze(a->freeze);
              } catch (const Error& e) {
                throw Error(fmt::format("finetune --freeze: {}", e.what()));
              }
              // The pretrained run's config, with the fine-tuning settings, then any --set.
              nlohmann::json j = to_json(load_config(ckpt / "config.json"));
              j["run"]["data"] = find_data(a->data, ckpt);  // from any directory
              j["run"]["steps"] = a->steps;
              j["run"]["batch"] = a->batch;
              j["run"]["accumulate"] = 1;
              j["run"]["seed"] = a->seed;
              j["run"]["eval_every"] = std::max<int64_t>(1, a->steps / 4);
              j["run"]["checkpoint_every"] = 0;
              j["optim"]["lr"] = a->lr;
              j["optim"]["min_lr"] = a->lr / 10;
              j["optim"]["warmup_steps"] = a->steps / 20;
              j["finetune"] = {{"init", ckpt.string()},
                               {"freeze", a->freeze},
                               {"aux", !a->no_aux},
                               {"families", a->families == "all" ? "" : a->families}};
              opt.config = parse_config_text(j.dump(), sets, (ckpt / "config.json").string());
              MONET_CHECK(is_instruct_folder(opt.config.run.data),
                          "finetune: --data '{}' holds no train.jsonl (instruction data: "
                          "data/toy4_instruct/README.md)",
                          opt.config.run.data);
              const std::string run =
                  ckpt.filename() == "checkpoint" ? ckpt.parent_path().string() : ckpt.string();
              opt.out_dir = a->out.empty() ? fs::path(run + "_ft") : fs::path(a->out);
              return opt;
            });
          },
          /*multi_process=*/true};  // under mpirun: data parallel
}

}  // namespace monet::app
