// From a run configuration to a model: the transformer of nn/ with the feed-forward kind the
// config names (dense, smoe, peer, monet_hd, monet_vd).
#pragma once
#include <memory>

#include "monet/registry.h"
#include "nn/transformer.h"
#include "train/config.h"

namespace monet {

// The device named on the command line (cpu, cuda: core/settings.h), checked as usable_device.
Device parse_device(const std::string& name);
// The device of run.device, checked: a CUDA device errors where there is none (or no CUDA build).
Device usable_device(DeviceType type);

nn::TransformerConfig transformer_config(const ModelConfig& m, DType dtype = DType::F32,
                                         Device device = Device::cpu());

// The feed-forward layers of the config's kind (its registry row builds them), one per call
// (`layer` decides, for MONET, whether the layer owns its routing group's router). The factory
// keeps references to `gen` and `noise`.
nn::FeedForwardFactory ffn_factory(const ModelConfig& m, const nn::ParamOptions& popt,
                                   Generator& gen, Generator* noise = nullptr);

// Parameters are drawn from `gen` in registration order.
// `noise` feeds the routing noise of layers that draw any in training (SMoE noisy top-k, jitter);
// the trainer passes its own saved generator so resumed runs draw the same noise.
std::shared_ptr<nn::Transformer> build_model(const ModelConfig& m, Generator& gen,
                                             DType dtype = DType::F32, Device device = Device::cpu(),
                                             Generator* noise = nullptr);

// Bytes a model on `device` can use: the GPU's memory on CUDA, MemAvailable on the host.
double available_bytes(Device device);

// Refuses, naming the model keys, a model whose weights alone would not fit in `device`'s memory
// (counted on the meta device first, so nothing is allocated; a size product that overflows is
// an error too). build_model calls it for every real device.
void check_model_fits(const ModelConfig& m, Device device);

// The parameter count of the model, built on the meta device (shapes only, nothing allocated), so
// paper-sized models are counted exactly on a laptop.
int64_t count_parameters(const ModelConfig& m);

// Parameters and buffers together: what model.safetensors holds.
nn::NamedTensors model_state(const nn::Module& model);

}  // namespace monet
