// The commands of the `monet` program. Each lives in one file of app/ that declares its options on
// the CLI11 parser and turns them into a call into train/ or eval/; main.cpp lists them.
//
// Conventions every command follows: results on stdout, progress and notes on stderr, and any
// error as one line "monet: error: ..." on stderr with exit status 1.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <string>

namespace monet::app {

struct Command {
  CLI::App* cli = nullptr;   // the subcommand, for CLI11
  std::function<int()> run;  // what it does once parsed; returns the exit status
};

// "cpu" unless --device said otherwise; the option every command that loads a model has.
inline void add_device_option(CLI::App* cmd, std::string& device) {
  cmd->add_option("--device", device, "cpu or cuda")->default_str("cpu");
}

Command add_train_command(CLI::App& app);
Command add_eval_command(CLI::App& app);
Command add_sample_command(CLI::App& app);
Command add_table_command(CLI::App& app);
Command add_experts_command(CLI::App& app);
Command add_mask_command(CLI::App& app);
Command add_purge_command(CLI::App& app);
Command add_bench_command(CLI::App& app);
Command add_demo_command(CLI::App& app);
Command add_kinds_command(CLI::App& app);

}  // namespace monet::app
