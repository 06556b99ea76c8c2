#include "train/model.h"

#include <fmt/format.h>

#include <fstream>

#include "monet/registry.h"
#ifdef MONET_WITH_CUDA
#include "core/cuda/device.h"
#endif

namespace monet {

Device parse_device(const std::string& name) {
  return usable_device(device_types().parse(name, "--device"));
}

Device usable_device(DeviceType type) {
  if (type != DeviceType::CUDA) return Device::cpu();
#ifdef MONET_WITH_CUDA
  MONET_CHECK(cuda::available(), "device 'cuda': no usable CUDA device ({})",
              cuda::unavailable_reason());
  return Device::cuda();
#else
  throw Error("device 'cuda': this build has no CUDA backend (nvcc not found, or -DMONET_CUDA=OFF)");
#endif
}

nn::TransformerConfig transformer_config(const ModelConfig& m, DType dtype, Device device) {
  nn::TransformerConfig c;
  c.vocab = m.vocab;
  c.d_model = m.d;
  c.n_layers = m.layers;
  c.n_heads = m.heads;
  c.context = m.context;
  c.norm_eps = m.norm_eps;
  c.n_kv_heads = m.kv_heads;
  c.rope_theta = m.rope_theta;
  c.dtype = dtype;
  c.device = device;
  c.validate();
  return c;
}

nn::FeedForwardFactory ffn_factory(const ModelConfig& m, const nn::ParamOptions& popt,
                                   Generator& gen, Generator* noise) {
  return m.ffn.kind->build(m.ffn.params, m.d, {popt, &gen, noise});
}

double available_bytes(Device device) {
#ifdef MONET_WITH_CUDA
  if (device.is_cuda()) return static_cast<double>(cuda::total_memory());
#endif
  (void)device;
  std::ifstream in("/proc/meminfo");
  std::string key;
  double kib = 0;
  while (in >> key >> kib) {
    if (key == "MemAvailable:") return kib * 1024.0;
    in.ignore(256, '\n');
  }
  return 8.0 * (1 << 30);  // no /proc: assume a small machine
}

void check_model_fits(const ModelConfig& m, Device device) {
  const std::string keys = fmt::format(
      "model.vocab = {}, model.d = {}, model.layers = {}, model.context = {}, model.ffn = {}",
      m.vocab, m.d, m.layers, m.context, m.ffn.params.dump());
  // The RoPE tables (context × d/heads, built on the host even for the meta device) first.
  const double head = static_cast<double>(m.d / m.heads);
  const double rope = 16.0 * static_cast<double>(m.context) * head;
  const double avail = available_bytes(device);
  MONET_CHECK(rope < avail,
              "the RoPE tables of model.context = {} positions × model.d / model.heads = {} need "
              "{:.3g} GiB alone, over the {:.1f} GiB of memory available; lower them",
              m.context, m.d / m.heads, rope / (1 << 30), avail / (1 << 30));
  // A lower bound first, in doubles (no overflow), so absurd sizes never reach the meta build
  // (2^40 layers would take forever to build even without memory): the attention projections
  // 2·d² + 2·d·d_kv per layer (d_kv = d·kv_heads/heads), the embedding and the head 2·vocab·d.
  const double d = static_cast<double>(m.d);
  const double d_kv =
      m.kv_heads > 0 ? d * static_cast<double>(m.kv_heads) / static_cast<double>(m.heads) : d;
  const double floor_bytes = 4.0 * ((2.0 * d * d + 2.0 * d * d_kv) * static_cast<double>(m.layers) +
                                    2.0 * static_cast<double>(m.vocab) * d);
  MONET_CHECK(floor_bytes < avail,
              "the model needs at least {:.3g} GiB of float32 weights (attention and embeddings "
              "alone), over the {:.1f} GiB of memory available on {}; lower the sizes of {}",
              floor_bytes / (1 << 30), avail / (1 << 30), device.str(), keys);
  int64_t params = 0;
  try {
    Generator gen(0);
    params = build_model(m, gen, DType::F32, Device::meta())->num_parameters();
  } catch (const Error& e) {
    throw Error(fmt::format("the model of {} is too large to build: {}", keys, e.what()));
  }
  const double weights = 4.0 * static_cast<double>(params);
  MONET_CHECK(weights < avail,
              "the model's {:.3g} parameters need {:.3g} GiB of float32 weights alone, over the "
              "{:.1f} GiB of memory available on {}; lower the sizes of {}",
              static_cast<double>(params), weights / (1 << 30), avail / (1 << 30), device.str(),
              keys);
}

std::shared_ptr<nn::Transformer> build_model(const ModelConfig& m, Generator& gen, DType dtype,
                                             Device device, Generator* noise) {
  if (!device.is_meta()) check_model_fits(m, device);
  nn::TransformerConfig tc = transformer_config(m, dtype, device);
  return std::make_shared<nn::Transformer>(tc, gen, ffn_factory(m, tc.param_options(), gen, noise));
}

int64_t count_parameters(const ModelConfig& m) {
  Generator gen(0);
  return build_model(m, gen, DType::F32, Device::meta())->num_parameters();
}

nn::NamedTensors model_state(const nn::Module& model) {
  nn::NamedTensors all = model.named_parameters();
  for (auto& b : model.named_buffers()) all.push_back(b);
  return all;
}

}  // namespace monet
