// Sparse autoencoders on disk and in a model.
//
// An SAE file is one safetensors file: the tensors W_enc [F, d], b_enc [F], W_dec [F, d] (rows
// are the unit decoder directions), b_dec [d] in F32, and metadata that says what it is and where
// it reads: format "monet-sae", d, features, activation (topk | relu), k, l1, layer, site
// (mlp | resid), plus free-form records (the model checkpoint, tokens trained on, its scores).
#pragma once
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "nn/transformer.h"
#include "sae/sae.h"
#include "train/safetensors.h"

namespace monet::sae {

// Written atomically. `records` are added to the metadata (they may not replace its keys).
void save_sae(const std::filesystem::path& path, const SparseAutoencoder& sae,
              const Metadata& records = {});
struct LoadedSae {
  std::shared_ptr<SparseAutoencoder> sae;
  Metadata metadata;
};
// Errors (one line, naming the file) on anything that is not such a file: a missing or bad
// metadata key, a missing, extra or misshapen tensor.
LoadedSae load_sae(const std::filesystem::path& path, Device device = Device::cpu());

// "layer 2 mlp (F 4096, k=32)": where an SAE reads and what it is, for notes and reports.
std::string describe_sae(const SparseAutoencoder& sae);

// Loads each file and sets it as the hook of its layer and site, with or without the error term.
// Errors name the file: a layer the model lacks, a width that is not d_model, two SAEs on one
// site. Returns the SAEs in the order given. `note`, when given, is told what was spliced.
std::vector<std::shared_ptr<SparseAutoencoder>> splice_saes(
    nn::Transformer& model, const std::vector<std::string>& files, bool error_term,
    const std::function<void(const std::string&)>& note = nullptr);

}  // namespace monet::sae
