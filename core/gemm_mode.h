// Which library computes the CPU's matrix products, and in which precision: the one place that
// decides it (like kernel_path.h for fused kernels).
//
// Every product of the CPU ops (matmul and its batched and backward forms, the fused attention's
// products, the experts' grouped products, which are matmuls) goes through cpu::gemm
// (core/cpu/gemm.h), which has two implementations:
//   - OpenBLAS's cblas_sgemm: always built, the reference;
//   - oneDNN's matmul primitive (Debian's libdnnl), when the build found it: faster on AVX-512
//     machines, and the only one with native bf16 products.
// and two precisions:
//   - F32: float inputs, float accumulation;
//   - BF16: the inputs rounded to bfloat16 (round to nearest even), products accumulated and
//     written in float, like PyTorch's CPU autocast. oneDNN runs its bf16 kernels; OpenBLAS
//     emulates them (rounds the inputs, then sgemm: the same numbers up to summation order, no
//     faster) so that the two can be compared and a build without oneDNN still runs.
// float64 products (gradient checks) always take OpenBLAS's dgemm in f64, whatever the mode.
//
// The mode is per thread and scoped. An op reads it once on the calling thread and passes it to
// each gemm, also to those it runs inside its OpenMP loop.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace monet {

enum class GemmBackend : uint8_t { OpenBLAS, OneDNN };
enum class Precision : uint8_t { F32, BF16 };

struct GemmMode {
  GemmBackend backend = GemmBackend::OpenBLAS;
  Precision precision = Precision::F32;
  bool operator==(const GemmMode&) const = default;
};

std::string gemm_backend_name(GemmBackend b);  // "openblas", "onednn"
std::string precision_name(Precision p);       // "fp32", "bf16"
// The backends this build has, reference first; and the default: the fastest built (oneDNN).
std::vector<GemmBackend> built_gemm_backends();
GemmBackend default_gemm_backend();
// Parses a name; throws monet::Error naming `what` (an option or config key) and the choices,
// also for a backend this build lacks.
GemmBackend parse_gemm_backend(std::string_view name, std::string_view what);
// Errors (naming `what`) when `b` is not in this build.
void check_built(GemmBackend b, std::string_view what);
Precision parse_precision(std::string_view name, std::string_view what);

// The calling thread's mode: {default_gemm_backend(), F32} outside any GemmScope.
GemmMode gemm_mode();

// In its scope the calling thread's products use `mode`.
class GemmScope {
 public:
  explicit GemmScope(GemmMode mode);
  ~GemmScope();
  GemmScope(const GemmScope&) = delete;
  GemmScope& operator=(const GemmScope&) = delete;

 private:
  GemmMode prev_;
};

}  // namespace monet
