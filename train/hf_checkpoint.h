// The Hugging Face layout of the released MONET checkpoints (Park et al. 2024; the authors'
// modelling file is modeling_monet.py in github.com/dmis-lab/Monet, read for the names and shapes
// below): a folder with
//   config.json                       LlamaConfig fields plus moe_dim, moe_experts (√N), moe_heads,
//                                     moe_topk, moe_groups, moe_decompose (vertical | horizontal)
//   model.safetensors                 or model.safetensors.index.json and its shards; bf16 weights
//   tokenizer.model                   SentencePiece (LLaMA's: bos 1, eos 2)
// The tensors map one to one onto this library's parameters (README.md, "Running the released
// MONET models", has the table), within layer i:
//   model.layers.{i}.input_layernorm.weight          layers.{i}.norm1.weight
//   model.layers.{i}.self_attn.{q,k,v,o}_proj.weight layers.{i}.attn.{wq,wk,wv,wo}.weight
//   model.layers.{i}.post_attention_layernorm.weight layers.{i}.norm2.weight
//   model.layers.{i}.router.*                        layers.{i}.ffn.router.*  (i % moe_groups = 0)
//   model.layers.{i}.moe.*                           layers.{i}.ffn.*  (VD u1, u2, v11..v22,
//                                                                       b1, b2; HD u, v, b)
// and outside the layers model.embed_tokens.weight, model.norm.weight, lm_head.weight are
// embed.weight, norm.weight, lm_head.weight.
// PyTorch's BatchNorm counters (router.norm{1,2}.num_batches_tracked) are read and ignored; with
// tie_word_embeddings the head is the embedding.
#pragma once
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "nn/transformer.h"
#include "train/config.h"

namespace monet {

// Whether `dir` holds a Hugging Face checkpoint: a config.json with HF fields (hidden_size), not
// this library's sections (model, optim, run).
bool is_hf_checkpoint(const std::filesystem::path& dir);

// The model an HF config.json describes, checked; errors name `where` and the HF field.
// Run settings are this library's defaults.
Config config_from_hf(const nlohmann::json& hf, const std::string& where);
// The config.json `monet export --to hf` writes for a MONET model (an error for other kinds).
nlohmann::json hf_config(const ModelConfig& m, const std::string& torch_dtype);

// Tensor names between the two layouts. our_tensor_name returns "" for tensors that are read and
// ignored; both error on a name with no counterpart.
std::string hf_tensor_name(const std::string& ours);
std::string our_tensor_name(const std::string& hf);

// The model of an HF folder with its weights (bf16 or f32, converted to the model's f32), in
// eval mode, read shard by shard. The memory the weights need is predicted on the meta device
// and checked, with the largest shard, before anything is read; `note` hears what is loaded.
std::shared_ptr<nn::Transformer> load_hf_model(
    const std::filesystem::path& dir, Config* config, Device device,
    const std::function<void(const std::string&)>& note = nullptr);

// Writes `model` (of config `m`) as an HF folder `out` (which must not exist): config.json,
// model.safetensors with the parameters in `dtype` (F32 or BF16) and the buffers in F32, and
// `tokenizer_model` when given. Written into `out`.tmp and renamed, so a failure leaves nothing
// half-written under `out`.
void export_hf(const nn::Module& model, const ModelConfig& m, const std::filesystem::path& out,
               DType dtype, const std::filesystem::path& tokenizer_model = {});

}  // namespace monet
