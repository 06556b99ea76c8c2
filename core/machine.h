// What the process runs on, asked by the layers above instead of reaching for the libraries and
// the environment themselves: the CPU's thread pool (OpenMP and OpenBLAS share one), the BLAS
// kernel set, and whether an MPI launcher started this process.
#pragma once
#include <optional>
#include <string>

namespace monet {

int cpu_threads();             // the threads of the CPU kernels and products
std::string blas_core_name();  // OpenBLAS's kernel set ("Haswell", "SkylakeX", ...)

// The job's size when an MPI launcher started this process (Open MPI's mpirun sets
// OMPI_COMM_WORLD_SIZE; MPICH's and Slurm's PMI set PMI_SIZE), else nothing.
std::optional<std::string> mpi_launch_size();
// The processes of the job on this machine (OMPI_COMM_WORLD_LOCAL_SIZE), else `fallback`.
int mpi_local_size(int fallback);

}  // namespace monet
