#include "core/gemm_mode.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/error.h"
#include "core/settings.h"

namespace monet {

std::string gemm_backend_name(GemmBackend b) {
  return gemm_backends().name(b);
}
std::string precision_name(Precision p) {
  return precisions().name(p);
}

std::vector<GemmBackend> built_gemm_backends() {
#ifdef MONET_WITH_DNNL
  return {GemmBackend::OpenBLAS, GemmBackend::OneDNN};
#else
  return {GemmBackend::OpenBLAS};
#endif
}

GemmBackend default_gemm_backend() {
  return built_gemm_backends().back();
}

GemmBackend parse_gemm_backend(std::string_view name, std::string_view what) {
  const GemmBackend b = gemm_backends().parse(name, what);
  check_built(b, what);
  return b;
}

void check_built(GemmBackend b, std::string_view what) {
  const std::vector<GemmBackend> built = built_gemm_backends();
  MONET_CHECK(std::find(built.begin(), built.end(), b) != built.end(),
              "{}: '{}' is not in this build (libdnnl-dev was not found when it was configured); "
              "use 'openblas'",
              what, gemm_backend_name(b));
}

Precision parse_precision(std::string_view name, std::string_view what) {
  return precisions().parse(name, what);
}

namespace {
// The calling thread's mode, the default until a GemmScope sets another.
GemmMode& thread_mode() {
  thread_local GemmMode mode{default_gemm_backend(), Precision::F32};
  return mode;
}
}  // namespace

GemmMode gemm_mode() {
  return thread_mode();
}

GemmScope::GemmScope(GemmMode mode) : prev_(gemm_mode()) {
  thread_mode() = mode;
}
GemmScope::~GemmScope() {
  thread_mode() = prev_;
}

}  // namespace monet
