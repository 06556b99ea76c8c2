#include "core/settings.h"

namespace monet {

const NameTable<DeviceType>& device_types() {
  static const NameTable<DeviceType> t("device",
                                       {{DeviceType::CPU, "cpu"}, {DeviceType::CUDA, "cuda"}});
  return t;
}
const NameTable<GemmBackend>& gemm_backends() {
  static const NameTable<GemmBackend> t(
      "GEMM backend", {{GemmBackend::OpenBLAS, "openblas"}, {GemmBackend::OneDNN, "onednn"}});
  return t;
}
const NameTable<Precision>& precisions() {
  static const NameTable<Precision> t("precision",
                                      {{Precision::F32, "fp32"}, {Precision::BF16, "bf16"}});
  return t;
}

}  // namespace monet
