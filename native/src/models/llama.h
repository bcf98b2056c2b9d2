// LlamaForCausalLM (also Mistral / Qwen2-style configs) with Hugging Face semantics:
// RMSNorm, rotary embeddings, grouped-query attention, SiLU MLP, tied embeddings.
// Weights are frozen: they never require gradients, so autograd only flows to inputs
// (soft prompts, prefixes).
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <utility>
#include <vector>

#include "models/blocks.h"
#include "ptune/ptune.h"

namespace ptune::io {
class WeightStore;
}

namespace ptune::models {

class Llama {
 public:
  /// Loads and shape-checks every weight; dtype is the compute dtype (fp32, or fp64 in tests).
  Llama(const io::WeightStore& weights, const LlamaConfig& config, at::ScalarType dtype);

  const LlamaConfig& config() const { return config_; }
  at::ScalarType dtype() const { return dtype_; }

  /// ids is (B, S) int64; returns (B, S, C).
  at::Tensor embed(const at::Tensor& ids) const;

  /// Runs the decoder stack on embeddings. embeds is (B, S, C); positions is (B, S) int64
  /// rotary positions; key_mask is (B, S) bool for the new positions. When cache is given,
  /// its positions are attended to first and the new keys/values are appended to it.
  /// Returns the final-normed hidden states (B, S, C).
  at::Tensor forward(const at::Tensor& embeds, const at::Tensor& positions,
                     const at::Tensor& key_mask, KvCache* cache) const;

  /// The LM head (V, C): lm_head.weight, or the embedding table when tied.
  const at::Tensor& lmHead() const { return lm_head_; }

  /// An empty cache for batch size B.
  KvCache emptyCache(int64_t B) const;

  /// Handles to layer `index`'s weights under their checkpoint names, for two-stage training
  /// (a copy of the model replaces them with trainable clones; copies share all other weights).
  std::vector<std::pair<std::string, at::Tensor*>> layerWeights(int64_t index);

 private:
  struct Layer {
    at::Tensor input_norm;          // (C)
    at::Tensor q_proj, k_proj, v_proj, o_proj;  // (H*D, C), (G*D, C), (G*D, C), (C, H*D)
    at::Tensor q_bias, k_bias, v_bias, o_bias;  // undefined unless attention_bias
    at::Tensor post_norm;           // (C)
    at::Tensor gate_proj, up_proj;  // (I, C)
    at::Tensor down_proj;           // (C, I)
    at::Tensor gate_bias, up_bias, down_bias;  // undefined unless mlp_bias
  };

  at::Tensor attentionBlock(const Layer& layer, const at::Tensor& x, const at::Tensor& cos,
                            const at::Tensor& sin, const at::Tensor& bias, KvCache* cache,
                            size_t layer_index) const;

  LlamaConfig config_;
  at::ScalarType dtype_;
  Rotary rotary_;
  at::Tensor embed_tokens_;  // (V, C)
  at::Tensor lm_head_;       // (V, C)
  at::Tensor final_norm_;    // (C)
  std::vector<Layer> layers_;
};

}  // namespace ptune::models
