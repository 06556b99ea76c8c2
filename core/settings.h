// The enum settings that core owns, each with its one name table (core/names.h): the device a
// model runs on, the CPU's GEMM library and the products' precision. train/config.h stores these
// enums (run.device, run.gemm, run.precision); the command line offers the tables' names.
#pragma once
#include "core/dtype.h"
#include "core/gemm_mode.h"
#include "core/names.h"

namespace monet {

const NameTable<DeviceType>& device_types();    // cpu, cuda (the meta device is internal)
const NameTable<GemmBackend>& gemm_backends();  // openblas, onednn
const NameTable<Precision>& precisions();       // fp32, bf16

}  // namespace monet
