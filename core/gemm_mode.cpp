#include "core/gemm_mode.h"

#include <fmt/format.h>

#include "core/error.h"

namespace monet {
std::string gemm_backend_name(GemmBackend b) {
  return b == GemmBackend::OneDNN ? "onednn" : "openblas";
}
std::string precision_name(Precision p) {
  return p == Precision::BF16 ? "bf16" : "fp32";
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
  if (name == "openblas") return GemmBackend::OpenBLAS;
  if (name == "onednn") {
#ifdef MONET_WITH_DNNL
    return GemmBackend::OneDNN;
#else
    throw Error(
        fmt::format("{}: 'onednn' is not in this build (libdnnl-dev was not found when "
                    "it was configured); use 'openblas'",
                    what));
#endif
  }
  throw Error(fmt::format("{}: unknown GEMM backend '{}' (choose openblas or onednn)", what, name));
}

Precision parse_precision(std::string_view name, std::string_view what) {
  if (name == "fp32") return Precision::F32;
  if (name == "bf16") return Precision::BF16;
  throw Error(fmt::format("{}: unknown precision '{}' (choose fp32 or bf16)", what, name));
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
