// What `monet train` and `monet finetune` share: the options of a training run besides where its
// config comes from (--set, --resume, --stop-at, --device, --gemm/--precision, --force), and
// running it: resumed from its folder, or new from the command's own config, then the final
// evaluation's table on stdout.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "app/command.h"
#include "core/comm.h"
#include "train/trainer.h"

namespace monet::app {

struct RunArgs {
  std::string resume, device;
  GemmArgs gemm;
  std::vector<std::string> sets;
  int64_t stop_at = -1;
  bool force = false;
};
// `steps_from` names where the step count comes from, for --stop-at's default.
void add_run_options(CLI::App* cmd, RunArgs& a, const std::string& steps_from);

// A new run's config and folder, its config parsed with `sets` (the --set overrides, then those
// of --device, --gemm and --precision).
using FreshRun = std::function<TrainOptions(const std::vector<std::string>& sets)>;
// With --resume, the run in that folder (its config, the sets on top); else fresh(sets)'s config
// and folder. Then --stop-at and --force; runs on `comm`'s ranks (rank 0 prints the table);
// returns the exit status.
int run_training(const RunArgs& a, Communicator& comm, const FreshRun& fresh);

// The processes of this job: MPI_COMM_WORLD when an MPI launcher started this process (Open MPI's
// mpirun sets OMPI_COMM_WORLD_SIZE, MPICH's and Slurm's PMI set PMI_SIZE), else this process
// alone. Errors when launched by mpirun in a build without MPI.
std::unique_ptr<Communicator> job_communicator();

}  // namespace monet::app
