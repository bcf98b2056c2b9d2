// LlamaForCausalLM (also Mistral and Qwen2 configs) with Hugging Face semantics: RMSNorm,
// rotary embeddings, grouped-query attention, SwiGLU MLP, optional q/k/v(/o) and MLP biases,
// sliding-window attention from a given layer on, tied embeddings as a fallback LM head.
// Weights are frozen: autograd only flows to inputs (soft prompts, prefixes).
#include <ATen/ATen.h>

#include <cmath>
#include <string>

#include "core/check.h"
#include "io/weight_source.h"
#include "models/backbone.h"

namespace ptune::models {
namespace {

class Llama final : public Backbone {
 public:
  Llama(const io::WeightSource& weights, const ModelSpec& spec, at::ScalarType dtype)
      : Backbone(spec, dtype), rotary_((validate(spec), spec.head_dim), spec) {
    const int64_t C = spec.hidden_size, V = spec.vocab_size, I = spec.intermediate_size;
    const int64_t HD = spec.num_attention_heads * spec.head_dim;
    const int64_t GD = spec.num_key_value_heads * spec.head_dim;
    embed_tokens_ = weights.load("model.embed_tokens.weight", {V, C}, dtype);
    final_norm_ = weights.load("model.norm.weight", {C}, dtype);
    if (weights.contains("lm_head.weight")) {
      head_ = heads::LmHead::decoder(weights.load("lm_head.weight", {V, C}, dtype));
    } else {
      PTUNE_CHECK(spec.tie_word_embeddings,
                  "model weights have no 'lm_head.weight' and config.json does not set "
                  "tie_word_embeddings: the checkpoint is incomplete");
      head_ = heads::LmHead::decoder(embed_tokens_);
    }
    layers_.reserve(static_cast<size_t>(spec.num_hidden_layers));
    for (int64_t i = 0; i < spec.num_hidden_layers; ++i) {
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
      layer.q_bias = optional(p + "self_attn.q_proj.bias", HD, spec.attention_bias);
      layer.k_bias = optional(p + "self_attn.k_proj.bias", GD, spec.attention_bias);
      layer.v_bias = optional(p + "self_attn.v_proj.bias", GD, spec.attention_bias);
      layer.o_bias = optional(p + "self_attn.o_proj.bias", C, false);  // Qwen2: q/k/v only
      layer.gate_bias = optional(p + "mlp.gate_proj.bias", I, spec.mlp_bias);
      layer.up_bias = optional(p + "mlp.up_proj.bias", I, spec.mlp_bias);
      layer.down_bias = optional(p + "mlp.down_proj.bias", C, spec.mlp_bias);
      layers_.push_back(std::move(layer));
    }
  }

  bool causal() const override { return true; }

  at::Tensor embed(const at::Tensor& ids) const override { return at::embedding(embed_tokens_, ids); }

  at::Tensor forward(const BackboneInput& in, KvCache* cache) const override {
    const int64_t S = in.embeds.size(1);
    at::Tensor cos, sin;
    rotary_.tables(in.positions, dtype_, cos, sin);
    const at::Tensor full_mask = cache != nullptr ? at::cat({cache->key_mask, in.key_mask}, 1) : in.key_mask;
    const at::Tensor bias = attentionBias(full_mask, S, dtype_);  // (B, 1, S, L+S)
    const at::Tensor window_bias =
        spec_.sliding_window > 0 ? attentionBias(full_mask, S, dtype_, true, spec_.sliding_window) : bias;
    at::Tensor h = in.embeds;
    for (size_t i = 0; i < layers_.size(); ++i) {
      const Layer& layer = layers_[i];
      const bool windowed = static_cast<int64_t>(i) >= spec_.first_window_layer;
      h = h + attentionBlock(layer, rmsNorm(h, layer.input_norm, spec_.norm_eps), cos, sin,
                             windowed ? window_bias : bias, cache, i);
      const at::Tensor x = rmsNorm(h, layer.post_norm, spec_.norm_eps);
      const at::Tensor gated = gatedActivation(linear(x, layer.gate_proj, layer.gate_bias),
                                               linear(x, layer.up_proj, layer.up_bias),
                                               static_cast<Activation>(spec_.activation));
      h = h + linear(gated, layer.down_proj, layer.down_bias);
    }
    if (cache != nullptr) cache->key_mask = full_mask;
    return rmsNorm(h, final_norm_, spec_.norm_eps);
  }

  std::vector<std::pair<std::string, at::Tensor*>> layerWeights(int64_t index) override {
    checkLayer(index);
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

  std::unique_ptr<Backbone> clone() const override { return std::make_unique<Llama>(*this); }

 private:
  struct Layer {
    at::Tensor input_norm;                      // (C)
    at::Tensor q_proj, k_proj, v_proj, o_proj;  // (H*D, C), (G*D, C), (G*D, C), (C, H*D)
    at::Tensor q_bias, k_bias, v_bias, o_bias;  // undefined unless present
    at::Tensor post_norm;                       // (C)
    at::Tensor gate_proj, up_proj;              // (I, C)
    at::Tensor down_proj;                       // (C, I)
    at::Tensor gate_bias, up_bias, down_bias;   // undefined unless mlp_bias
  };

  static void validate(const ModelSpec& c) {
    PTUNE_CHECK(c.head_dim % 2 == 0, "config.json: head_dim (", c.head_dim, ") must be even for rotary embeddings");
    PTUNE_CHECK(c.rope_theta > 0, "config.json: rope_theta must be positive");
    PTUNE_CHECK(c.sliding_window >= 0 && c.first_window_layer >= 0,
                "sliding_window and first_window_layer must be >= 0, got ", c.sliding_window, " and ",
                c.first_window_layer);
  }

  // x (B, S, C) -> attention output (B, S, C)
  at::Tensor attentionBlock(const Layer& layer, const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                            const at::Tensor& bias, KvCache* cache, size_t layer_index) const {
    const int64_t B = x.size(0), S = x.size(1);
    const int64_t H = spec_.num_attention_heads, G = spec_.num_key_value_heads, D = spec_.head_dim;
    // q (B, H, S, D), k and v (B, G, S, D)
    const at::Tensor q = rotaryHeads(linear(x, layer.q_proj, layer.q_bias).view({B, S, H, D}), cos, sin);
    at::Tensor k = rotaryHeads(linear(x, layer.k_proj, layer.k_bias).view({B, S, G, D}), cos, sin);
    at::Tensor v = linear(x, layer.v_proj, layer.v_bias).view({B, S, G, D}).transpose(1, 2);
    // Cached keys were rotated with their own positions; prefixes enter the cache unrotated.
    appendToCache(cache, layer_index, k, v);
    const at::Tensor out = attention(q, k, v, bias, 1.0 / std::sqrt(static_cast<double>(D)), true);
    return linear(out.transpose(1, 2).reshape({B, S, H * D}), layer.o_proj, layer.o_bias);
  }

  Rotary rotary_;
  at::Tensor embed_tokens_;  // (V, C)
  at::Tensor final_norm_;    // (C)
  std::vector<Layer> layers_;
};

}  // namespace

std::unique_ptr<Backbone> loadLlama(const io::WeightSource& weights, const ModelSpec& spec, at::ScalarType dtype) {
  return std::make_unique<Llama>(weights, spec, dtype);
}

}  // namespace ptune::models
