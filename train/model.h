// From a run configuration to a model: the transformer of nn/ with the feed-forward kind the
// config names (dense, monet_hd, monet_vd; smoe and peer come with their layers).
#pragma once
#include <memory>

#include "nn/transformer.h"
#include "train/config.h"

namespace monet {

// "cpu" or "cuda"; a CUDA device that cannot be used is an error naming the reason.
Device parse_device(const std::string& name);

nn::TransformerConfig transformer_config(const ModelConfig& m, DType dtype = DType::F32,
                                         Device device = Device::cpu());

// Parameters are drawn from `gen` in registration order.
// `noise` feeds the routing noise of layers that draw any in training (SMoE noisy top-k, jitter);
// the trainer passes its own saved generator so resumed runs draw the same noise.
std::shared_ptr<nn::Transformer> build_model(const ModelConfig& m, Generator& gen,
                                             DType dtype = DType::F32, Device device = Device::cpu(),
                                             Generator* noise = nullptr);

// Parameters and buffers together: what model.safetensors holds.
nn::NamedTensors model_state(const nn::Module& model);

}  // namespace monet
