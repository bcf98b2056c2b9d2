// The tiny GPT-2 / BLOOM / BERT models of tests-java/resources/families (hf_families.py):
// their ModelSpec as Java's Architecture reads config.json, and float64 backbones of them.
#pragma once

#include <cstdint>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "models/backbone.h"
#include "ptune/ptune.h"

namespace ptune_test {

inline const std::string kFamiliesDir = PTUNE_FAMILIES_DIR;

/// The spec of a families case from its config.json (the fields Java's Architecture reads).
inline ptune::ModelSpec familySpec(const std::string& name) {
  std::ifstream in(kFamiliesDir + "/" + name + "/model/config.json");
  if (!in) throw std::runtime_error("cannot open " + name + "/model/config.json (hf_families.py writes it)");
  const nlohmann::json c = nlohmann::json::parse(in);
  const std::string type = c.at("model_type");
  ptune::ModelSpec s{};
  s.tie_word_embeddings = true;
  s.rope_theta = 10000.0;
  if (type == "gpt2") {
    s.family = static_cast<int32_t>(ptune::ModelFamily::kGpt2);
    s.hidden_size = c.at("n_embd");
    s.num_hidden_layers = c.at("n_layer");
    s.num_attention_heads = c.at("n_head");
    s.intermediate_size = c.at("n_inner").is_null() ? 4 * s.hidden_size : c.at("n_inner").get<int64_t>();
    s.max_position_embeddings = c.at("n_positions");
    s.norm_eps = c.at("layer_norm_epsilon");
    s.activation = static_cast<int32_t>(ptune::Activation::kGeluTanh);
  } else if (type == "bloom") {
    s.family = static_cast<int32_t>(ptune::ModelFamily::kBloom);
    s.hidden_size = c.at("hidden_size");
    s.num_hidden_layers = c.at("n_layer");
    s.num_attention_heads = c.at("n_head");
    s.intermediate_size = 4 * s.hidden_size;
    s.norm_eps = c.at("layer_norm_epsilon");
    s.activation = static_cast<int32_t>(ptune::Activation::kGeluBloom);
  } else {
    s.family = static_cast<int32_t>(ptune::ModelFamily::kBert);
    s.hidden_size = c.at("hidden_size");
    s.num_hidden_layers = c.at("num_hidden_layers");
    s.num_attention_heads = c.at("num_attention_heads");
    s.intermediate_size = c.at("intermediate_size");
    s.max_position_embeddings = c.at("max_position_embeddings");
    s.type_vocab_size = c.at("type_vocab_size");
    s.norm_eps = c.at("layer_norm_eps");
    s.activation = static_cast<int32_t>(ptune::Activation::kGeluExact);
  }
  s.vocab_size = c.at("vocab_size");
  s.num_key_value_heads = s.num_attention_heads;
  s.head_dim = s.hidden_size / s.num_attention_heads;
  return s;
}

/// A families case as a float64 backbone.
inline std::unique_ptr<ptune::models::Backbone> familyModel(const std::string& name) {
  const ptune::io::WeightStore weights(kFamiliesDir + "/" + name + "/model");
  return ptune::models::loadBackbone(weights, familySpec(name), at::kDouble);
}

}  // namespace ptune_test
