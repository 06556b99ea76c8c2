#include "app/run_command.h"

#include <cblas.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <thread>

namespace monet::app {

void add_run_options(CLI::App* cmd, RunArgs& a, const std::string& steps_from) {
  cmd->add_option("--set", a.sets, "override a config key: --set run.eval_every=50 (repeatable)");
  cmd->add_option("--resume", a.resume, "continue the run in this folder from its checkpoint");
  cmd->add_option("--stop-at", a.stop_at, "stop with a checkpoint after this many steps")
      ->check(at_least(0))
      ->default_str(steps_from);
  cmd->add_option("--device", a.device, "cpu or cuda")->default_str("run.device");
  add_gemm_options(cmd, a.gemm, "run");
  cmd->add_flag("--force", a.force, "start over in a folder that already holds a run");
}

std::unique_ptr<Communicator> job_communicator() {
  const char* size = std::getenv("OMPI_COMM_WORLD_SIZE");
  if (size == nullptr) size = std::getenv("PMI_SIZE");
  if (size == nullptr) return single_process();
  MONET_CHECK(mpi_available(),
              "started by an MPI launcher ({} processes) but this monet was built without MPI: "
              "install libopenmpi-dev and openmpi-bin (scripts/deps.sh does) and rebuild",
              size);
  return mpi_world();
}

namespace {

// Ranks that share a machine each start a thread pool as large as the machine (mpirun does not
// size them); more threads than cores make them spin against each other.
void warn_if_oversubscribed(const Communicator& comm) {
  if (comm.size() == 1 || comm.rank() != 0) return;
  const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  const int ranks_here = local ? std::atoi(local) : comm.size();
  const int threads = openblas_get_num_threads();
  const auto cores = static_cast<int>(std::thread::hardware_concurrency());
  if (cores > 0 && ranks_here * threads > cores)
    fmt::print(stderr,
               "monet: warning: {} ranks on this machine × {} threads each > {} cores; give each "
               "rank its share: mpirun -x OMP_NUM_THREADS={} ...\n",
               ranks_here, threads, cores, std::max(1, cores / ranks_here));
}

}  // namespace

int run_training(const RunArgs& a, Communicator& comm, const std::function<TrainOptions()>& fresh) {
  TrainOptions opt;
  if (!a.resume.empty()) {
    // A folder stopped before its first checkpoint starts from step 0 with its own config.
    opt.resume = !never_checkpointed(a.resume);
    opt.out_dir = a.resume;
    opt.config = resume_config(a.resume, a.sets);
  } else {
    opt = fresh();
  }
  if (!a.device.empty()) opt.config.run.device = a.device;
  apply_gemm_args(a.gemm, opt.config.run);
  opt.stop_at = a.stop_at;
  opt.force = a.force;
  opt.comm = &comm;
  warn_if_oversubscribed(comm);
  const TrainResult r = train(opt);
  if (!r.eval.empty() && comm.rank() == 0) fmt::print("{}", eval_markdown(r.eval));
  return r.interrupted ? kExitInterrupted : 0;
}

}  // namespace monet::app
