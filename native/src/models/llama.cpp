#include "models/llama.h"

#include <ATen/ATen.h>

#include <string>

#include "core/check.h"
#include "io/safetensors.h"

namespace ptune::models {
namespace {

void validate(const LlamaConfig& c) {
  PTUNE_CHECK(c.vocab_size > 0 && c.hidden_size > 0 && c.intermediate_size > 0 &&
                  c.num_hidden_layers > 0 && c.num_attention_heads > 0 &&
                  c.num_key_value_heads > 0 && c.head_dim > 0,
              "config.json: vocab_size, hidden_size, intermediate_size, num_hidden_layers, "
              "num_attention_heads, num_key_value_heads and head_dim must all be positive");
  PTUNE_CHECK(c.num_attention_heads % c.num_key_value_heads == 0,
              "config.json: num_attention_heads (", c.num_attention_heads,
              ") must be a multiple of num_key_value_heads (", c.num_key_value_heads, ")");
  PTUNE_CHECK(c.head_dim % 2 == 0, "config.json: head_dim (", c.head_dim,
              ") must be even for rotary embeddings");
  PTUNE_CHECK(c.rms_norm_eps > 0 && c.rope_theta > 0,
              "config.json: rms_norm_eps and rope_theta must be positive");
}

at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  return bias.defined() ? at::linear(x, weight, bias) : at::linear(x, weight);
}

}  // namespace

Llama::Llama(const io::WeightStore& weights, const LlamaConfig& config, at::ScalarType dtype)
    : config_(config), dtype_(dtype), rotary_((validate(config), config.head_dim), config) {
  const int64_t C = config.hidden_size, V = config.vocab_size, I = config.intermediate_size;
  const int64_t HD = config.num_attention_heads * config.head_dim;
  const int64_t GD = config.num_key_value_heads * config.head_dim;
  PTUNE_CHECK(config.sliding_window >= 0 && config.first_window_layer >= 0,
              "sliding_window and first_window_layer must be >= 0, got ", config.sliding_window, " and ",
              config.first_window_layer);
  embed_tokens_ = weights.load("model.embed_tokens.weight", {V, C}, dtype);
  final_norm_ = weights.load("model.norm.weight", {C}, dtype);
  if (weights.contains("lm_head.weight")) {
    lm_head_ = weights.load("lm_head.weight", {V, C}, dtype);
  } else {
    PTUNE_CHECK(config.tie_word_embeddings,
                "model weights have no 'lm_head.weight' and config.json does not set "
                "tie_word_embeddings: the checkpoint is incomplete");
    lm_head_ = embed_tokens_;
  }
  layers_.reserve(static_cast<size_t>(config.num_hidden_layers));
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    Layer layer;
    layer.input_norm = weights.load(p + "input_layernorm.weight", {C}, dtype);
    layer.post_norm = weights.load(p + "post_attention_layernorm.weight", {C}, dtype);
    layer.q_proj = weights.load(p + "self_attn.q_proj.weight", {HD, C}, dtype);
    layer.k_proj = weights.load(p + "self_attn.k_proj.weight", {GD, C}, dtype);
    layer.v_proj = weights.load(p + "self_attn.v_proj.weight", {GD, C}, dtype);
    layer.o_proj = weights.load(p + "self_attn.o_proj.weight", {C, HD}, dtype);
    layer.gate_proj = weights.load(p + "mlp.gate_proj.weight", {I, C}, dtype);
    layer.up_proj = weights.load(p + "mlp.up_proj.weight", {I, C}, dtype);
    layer.down_proj = weights.load(p + "mlp.down_proj.weight", {C, I}, dtype);
    // Qwen2 has q/k/v biases without setting attention_bias; load whichever are present.
    const auto optional = [&](const std::string& name, int64_t n, bool required) {
      if (weights.contains(name)) return weights.load(name, {n}, dtype);
      PTUNE_CHECK(!required, "model weights lack '", name, "' although config.json sets a bias");
      return at::Tensor();
    };
    layer.q_bias = optional(p + "self_attn.q_proj.bias", HD, config.attention_bias);
    layer.k_bias = optional(p + "self_attn.k_proj.bias", GD, config.attention_bias);
    layer.v_bias = optional(p + "self_attn.v_proj.bias", GD, config.attention_bias);
    layer.o_bias = optional(p + "self_attn.o_proj.bias", C, false);  // Qwen2: q/k/v only
    layer.gate_bias = optional(p + "mlp.gate_proj.bias", I, config.mlp_bias);
    layer.up_bias = optional(p + "mlp.up_proj.bias", I, config.mlp_bias);
    layer.down_bias = optional(p + "mlp.down_proj.bias", C, config.mlp_bias);
    layers_.push_back(std::move(layer));
  }
}

at::Tensor Llama::embed(const at::Tensor& ids) const {
  const at::Tensor out_of_range = ids.lt(0).logical_or(ids.ge(config_.vocab_size));
  PTUNE_CHECK(!out_of_range.any().item<bool>(), "token id outside the vocabulary [0, ",
              config_.vocab_size, ") in the input; was it tokenised for another model?");
  return at::embedding(embed_tokens_, ids);
}

KvCache Llama::emptyCache(int64_t B) const {
  KvCache cache;
  const auto opts = at::TensorOptions().dtype(dtype_);
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i) {
    cache.keys.push_back(at::empty({B, config_.num_key_value_heads, 0, config_.head_dim}, opts));
    cache.values.push_back(at::empty({B, config_.num_key_value_heads, 0, config_.head_dim}, opts));
  }
  cache.key_mask = at::empty({B, 0}, at::TensorOptions().dtype(at::kBool));
  return cache;
}

std::vector<std::pair<std::string, at::Tensor*>> Llama::layerWeights(int64_t index) {
  PTUNE_CHECK(index >= 0 && index < config_.num_hidden_layers, "layer ", index,
              " does not exist (the model has ", config_.num_hidden_layers, ")");
  Layer& l = layers_[static_cast<size_t>(index)];
  const std::string p = "model.layers." + std::to_string(index) + ".";
  std::vector<std::pair<std::string, at::Tensor*>> out = {
      {p + "input_layernorm.weight", &l.input_norm},
      {p + "self_attn.q_proj.weight", &l.q_proj},
      {p + "self_attn.k_proj.weight", &l.k_proj},
      {p + "self_attn.v_proj.weight", &l.v_proj},
      {p + "self_attn.o_proj.weight", &l.o_proj},
      {p + "post_attention_layernorm.weight", &l.post_norm},
      {p + "mlp.gate_proj.weight", &l.gate_proj},
      {p + "mlp.up_proj.weight", &l.up_proj},
      {p + "mlp.down_proj.weight", &l.down_proj}};
  const std::pair<const char*, at::Tensor*> biases[] = {
      {"self_attn.q_proj.bias", &l.q_bias}, {"self_attn.k_proj.bias", &l.k_bias},
      {"self_attn.v_proj.bias", &l.v_bias}, {"self_attn.o_proj.bias", &l.o_bias},
      {"mlp.gate_proj.bias", &l.gate_bias}, {"mlp.up_proj.bias", &l.up_bias},
      {"mlp.down_proj.bias", &l.down_bias}};
  for (const auto& [name, tensor] : biases) {
    if (tensor->defined()) out.emplace_back(p + name, tensor);
  }
  return out;
}

at::Tensor Llama::attentionBlock(const Layer& layer, const at::Tensor& x, const at::Tensor& cos,
                                 const at::Tensor& sin, const at::Tensor& bias, KvCache* cache,
                                 size_t layer_index) const {
  const int64_t B = x.size(0), S = x.size(1);
  const int64_t H = config_.num_attention_heads, G = config_.num_key_value_heads,
                D = config_.head_dim;
  // x (B, S, C) -> q (B, H, S, D), k and v (B, G, S, D)
  at::Tensor q = linear(x, layer.q_proj, layer.q_bias).view({B, S, H, D}).transpose(1, 2);
  at::Tensor k = linear(x, layer.k_proj, layer.k_bias).view({B, S, G, D}).transpose(1, 2);
  at::Tensor v = linear(x, layer.v_proj, layer.v_bias).view({B, S, G, D}).transpose(1, 2);
  q = applyRotary(q, cos, sin);
  k = applyRotary(k, cos, sin);
  if (cache != nullptr) {
    // Cached keys were rotated with their own positions; prefixes enter here unrotated.
    k = at::cat({cache->keys[layer_index], k}, 2);
    v = at::cat({cache->values[layer_index], v}, 2);
    cache->keys[layer_index] = k;
    cache->values[layer_index] = v;
  }
  const at::Tensor out = attention(q, k, v, bias, 1.0 / std::sqrt(static_cast<double>(D)));
  return linear(out.transpose(1, 2).reshape({B, S, H * D}), layer.o_proj, layer.o_bias);
}

at::Tensor Llama::forward(const at::Tensor& embeds, const at::Tensor& positions,
                          const at::Tensor& key_mask, KvCache* cache) const {
  const int64_t S = embeds.size(1);
  at::Tensor cos, sin;
  rotary_.tables(positions, dtype_, cos, sin);
  const at::Tensor full_mask = cache != nullptr ? at::cat({cache->key_mask, key_mask}, 1) : key_mask;
  const at::Tensor bias = attentionBias(full_mask, S, dtype_);  // (B, 1, S, L+S)
  const at::Tensor window_bias = config_.sliding_window > 0
                                     ? attentionBias(full_mask, S, dtype_, config_.sliding_window)
                                     : bias;
  at::Tensor h = embeds;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Layer& layer = layers_[i];
    const bool windowed = static_cast<int64_t>(i) >= config_.first_window_layer;
    h = h + attentionBlock(layer, rmsNorm(h, layer.input_norm, config_.rms_norm_eps), cos, sin,
                           windowed ? window_bias : bias, cache, i);
    const at::Tensor x = rmsNorm(h, layer.post_norm, config_.rms_norm_eps);
    const at::Tensor gated =
        at::silu(linear(x, layer.gate_proj, layer.gate_bias)) * linear(x, layer.up_proj, layer.up_bias);
    h = h + linear(gated, layer.down_proj, layer.down_bias);
  }
  if (cache != nullptr) cache->key_mask = full_mask;
  return rmsNorm(h, final_norm_, config_.rms_norm_eps);
}

}  // namespace ptune::models
