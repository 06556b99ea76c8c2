#include "train/model.h"

#include "moe/registry.h"
#ifdef MONET_WITH_CUDA
#include "core/cuda/device.h"
#endif

namespace monet {

Device parse_device(const std::string& name) {
  if (name == "cpu") return Device::cpu();
  MONET_CHECK(name == "cuda", "device '{}': use cpu or cuda", name);
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
  c.dtype = dtype;
  c.device = device;
  c.validate();
  return c;
}

nn::FeedForwardFactory ffn_factory(const ModelConfig& m, const nn::ParamOptions& popt,
                                   Generator& gen, Generator* noise) {
  return moe::ffn_kind(m.ffn.kind).build(m.ffn.params, m.d, {popt, &gen, noise});
}

std::shared_ptr<nn::Transformer> build_model(const ModelConfig& m, Generator& gen, DType dtype,
                                             Device device, Generator* noise) {
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
