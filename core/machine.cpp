#include "core/machine.h"

#include <cblas.h>

#include <cstdlib>

namespace monet {

int cpu_threads() {
  return openblas_get_num_threads();
}

std::string blas_core_name() {
  return openblas_get_corename();
}

std::optional<std::string> mpi_launch_size() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"})
    if (const char* v = std::getenv(var)) return std::string(v);
  return std::nullopt;
}

int mpi_local_size(int fallback) {
  const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  return local ? std::atoi(local) : fallback;
}

}  // namespace monet
