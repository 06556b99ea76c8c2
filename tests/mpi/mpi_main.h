// The main of the MPI checks (tests/mpi/*_check.cpp): the body runs on MPI_COMM_WORLD; an
// exception on any rank prints "<program>: rank r: error: <message>" and ends the whole job
// (MPI_Abort), so that no rank is left waiting in a collective for the one that failed.
#pragma once
#include <fmt/format.h>

#include <cstdio>
#include <exception>
#include <functional>
#include <memory>

#include "core/comm.h"

namespace monet::testing {

inline int mpi_main(const char* program, const std::function<int(Communicator&)>& body) {
  std::unique_ptr<Communicator> comm = mpi_world();
  try {
    return body(*comm);
  } catch (const std::exception& e) {
    fmt::print(stderr, "{}: rank {}: error: {}\n", program, comm->rank(), e.what());
    std::fflush(stderr);
    comm->abort(1);
  }
  return 1;  // not reached: abort ends the process (GCC does not see [[noreturn]] through a
             // virtual)
}

}  // namespace monet::testing
