#include "app/run_command.h"

#include <fmt/format.h>

#include <algorithm>
#include <thread>

#include "core/machine.h"
#include "train/run_folder.h"

namespace monet::app {

void add_run_options(CLI::App* cmd, RunArgs& a, const std::string& steps_from) {
  cmd->add_option("--set", a.sets, "override a config key: --set run.eval_every=50 (repeatable)");
  cmd->add_option("--resume", a.resume, "continue the run in this folder from its checkpoint");
  cmd->add_option("--stop-at", a.stop_at, "stop with a checkpoint after this many steps")
      ->check(at_least(0))
      ->default_str(steps_from);
  add_device_option(cmd, a.device, "run.device");
  add_gemm_options(cmd, a.gemm, "run");
  cmd->add_flag("--force", a.force, "start over in a folder that already holds a run");
}

std::unique_ptr<Communicator> job_communicator() {
  const std::optional<std::string> size = mpi_launch_size();
  if (!size) return single_process();
  MONET_CHECK(mpi_available(),
              "started by an MPI launcher ({} processes) but this monet was built without MPI: "
              "install libopenmpi-dev and openmpi-bin (scripts/deps.sh does) and rebuild",
              *size);
  return mpi_world();
}

namespace {

// Ranks that share a machine each start a thread pool as large as the machine (mpirun does not
// size them); more threads than cores make them spin against each other.
void warn_if_oversubscribed(const Communicator& comm) {
  if (comm.size() == 1 || comm.rank() != 0) return;
  const int ranks_here = mpi_local_size(comm.size());
  const int threads = cpu_threads();
  const auto cores = static_cast<int>(std::thread::hardware_concurrency());
  if (cores > 0 && ranks_here * threads > cores)
    fmt::print(stderr,
               "monet: warning: {} ranks on this machine × {} threads each > {} cores; give each "
               "rank its share: mpirun -x OMP_NUM_THREADS={} ...\n",
               ranks_here, threads, cores, std::max(1, cores / ranks_here));
}

}  // namespace

int run_training(const RunArgs& a, Communicator& comm, const FreshRun& fresh) {
  // --device, --gemm, --precision: overrides like --set, through the same validate().
  std::vector<std::string> sets = a.sets;
  for (std::string& s : shorthand_sets(a.device, a.gemm)) sets.push_back(std::move(s));
  TrainOptions opt;
  try {
    if (!a.resume.empty()) {
      // A folder stopped before its first checkpoint starts from step 0 with its own config.
      opt.resume = !never_checkpointed(a.resume);
      opt.out_dir = a.resume;
      opt.config = resume_config(a.resume, sets);
    } else {
      opt = fresh(sets);
    }
  } catch (const UsageError&) {
    throw;
  } catch (const Error& e) {
    throw naming_shorthands(e, a.device, a.gemm);
  }
  opt.stop_at = a.stop_at;
  opt.force = a.force;
  opt.comm = &comm;
  warn_if_oversubscribed(comm);
  const TrainResult r = train(opt);
  if (!r.eval.empty() && comm.rank() == 0) fmt::print("{}", eval_markdown(r.eval));
  return r.interrupted ? kExitInterrupted : 0;
}

}  // namespace monet::app
