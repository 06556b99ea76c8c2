#include "train/model.h"

#include "monet/monet_layer.h"
#include "monet/peer.h"
#include "monet/smoe.h"
#include "nn/mlp.h"
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
  if (m.ffn.kind == "dense") {
    c.mlp_activation = nn::parse_activation(m.ffn.get_string("activation"));
    c.mlp_hidden = m.ffn.get_int("hidden");
  }
  c.validate();
  return c;
}

nn::FeedForwardFactory ffn_factory(const ModelConfig& m, const nn::ParamOptions& popt,
                                   Generator& gen, Generator* noise) {
  const std::string& kind = m.ffn.kind;
  if (kind == "dense") {
    const nn::Activation act = nn::parse_activation(m.ffn.get_string("activation"));
    return [d = m.d, hidden = m.ffn.get_int("hidden"), act, &gen, popt](int) {
      return std::make_shared<nn::MLP>(d, hidden, act, gen, popt);
    };
  }
  if (kind == "monet_hd" || kind == "monet_vd") {
    moe::MonetOptions o;
    o.d = m.d;
    o.heads = m.ffn.get_int("heads");
    o.sqrt_n = m.ffn.get_int("sqrt_n");
    o.dim = m.ffn.get_int("dim");
    o.topk = m.ffn.get_int("topk");
    o.group = m.ffn.get_int("group");
    o.aux_weight = m.ffn.get_number("aux_weight");
    o.vertical = kind == "monet_vd";
    auto group = std::make_shared<moe::RoutingGroup>();
    return [o, group, &gen, popt](int layer) mutable {
      if (layer % o.group == 0) group = std::make_shared<moe::RoutingGroup>();  // a new group
      return std::make_shared<moe::MonetFeedForward>(o, layer, group, gen, popt);
    };
  }
  if (kind == "peer") {
    moe::PeerOptions o;
    o.d = m.d;
    o.sqrt_n = m.ffn.get_int("sqrt_n");
    o.heads = m.ffn.get_int("heads");
    o.topk = m.ffn.get_int("topk");
    o.d_query = m.ffn.get_int("d_query");
    o.activation = m.ffn.get_string("activation");
    o.score = m.ffn.get_string("score");
    o.query_batchnorm = m.ffn.get_int("query_batchnorm") != 0;
    o.validate();
    return [o, &gen, popt](int) { return std::make_shared<moe::PeerFeedForward>(o, gen, popt); };
  }
  MONET_CHECK(kind == "smoe", "model.ffn.kind '{}' has no layer in this build", kind);
  moe::SmoeOptions o;
  o.d = m.d;
  o.experts = m.ffn.get_int("experts");
  o.dim = m.ffn.get_int("dim");
  o.topk = m.ffn.get_int("topk");
  o.gating = m.ffn.get_string("gating");
  o.capacity_factor = m.ffn.get_number("capacity_factor");
  o.balance_weight = m.ffn.get_number("balance_weight");
  o.z_weight = m.ffn.get_number("z_weight");
  o.importance_weight = m.ffn.get_number("importance_weight");
  o.load_weight = m.ffn.get_number("load_weight");
  o.jitter = m.ffn.get_number("jitter");
  o.activation = m.ffn.get_string("activation");
  o.validate();
  return [o, &gen, noise, popt](int) {
    return std::make_shared<moe::SmoeFeedForward>(o, gen, popt, noise);
  };
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
