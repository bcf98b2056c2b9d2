// BloomForCausalLM with Hugging Face semantics: no position embeddings; ALiBi, a per-head bias
// slope_h * (position of the key) with positions counted over the attention mask (so prefixes
// and virtual tokens take positions 0..P-1 and padding none); word_embeddings_layernorm on the
// input embeddings (virtual tokens included, as PEFT prepends them to inputs_embeds); pre-LN
// blocks; query_key_value fused and interleaved per head ([q_h | k_h | v_h] for each head h);
// BLOOM's GELU; final ln_f; LM head tied to word_embeddings.
#include <ATen/ATen.h>

#include <cmath>
#include <string>

#include "core/check.h"
#include "io/weight_source.h"
#include "models/backbone.h"

namespace ptune::models {
namespace {

class Bloom final : public Backbone {
 public:
  Bloom(const io::WeightSource& weights, const ModelSpec& spec, at::ScalarType dtype)
      : Backbone(spec, dtype), slopes_(alibiSlopes(spec.num_attention_heads)) {
    const int64_t C = spec.hidden_size, V = spec.vocab_size, I = spec.intermediate_size;
    PTUNE_CHECK(spec.num_key_value_heads == spec.num_attention_heads &&
                    spec.head_dim * spec.num_attention_heads == C,
                "config.json: BLOOM needs hidden_size (", C, ") = n_head (", spec.num_attention_heads,
                ") x head_dim");
    prefix_ = weights.contains("transformer.word_embeddings.weight") ? "transformer." : "";
    const auto w = [&](const std::string& name, std::vector<int64_t> shape) {
      return weights.load(prefix_ + name, shape, dtype);
    };
    word_embeddings_ = w("word_embeddings.weight", {V, C});
    emb_norm_weight_ = w("word_embeddings_layernorm.weight", {C});
    emb_norm_bias_ = w("word_embeddings_layernorm.bias", {C});
    ln_f_weight_ = w("ln_f.weight", {C});
    ln_f_bias_ = w("ln_f.bias", {C});
    if (weights.contains("lm_head.weight") && !spec.tie_word_embeddings) {
      head_ = heads::LmHead::decoder(weights.load("lm_head.weight", {V, C}, dtype));
    } else {
      head_ = heads::LmHead::decoder(word_embeddings_);  // tied
    }
    for (int64_t i = 0; i < spec.num_hidden_layers; ++i) {
      const std::string p = "h." + std::to_string(i) + ".";
      Layer l;
      l.input_norm_weight = w(p + "input_layernorm.weight", {C});
      l.input_norm_bias = w(p + "input_layernorm.bias", {C});
      l.qkv_weight = w(p + "self_attention.query_key_value.weight", {3 * C, C});
      l.qkv_bias = w(p + "self_attention.query_key_value.bias", {3 * C});
      l.dense_weight = w(p + "self_attention.dense.weight", {C, C});
      l.dense_bias = w(p + "self_attention.dense.bias", {C});
      l.post_norm_weight = w(p + "post_attention_layernorm.weight", {C});
      l.post_norm_bias = w(p + "post_attention_layernorm.bias", {C});
      l.up_weight = w(p + "mlp.dense_h_to_4h.weight", {I, C});
      l.up_bias = w(p + "mlp.dense_h_to_4h.bias", {I});
      l.down_weight = w(p + "mlp.dense_4h_to_h.weight", {C, I});
      l.down_bias = w(p + "mlp.dense_4h_to_h.bias", {C});
      layers_.push_back(std::move(l));
    }
  }

  bool causal() const override { return true; }

  at::Tensor embed(const at::Tensor& ids) const override { return at::embedding(word_embeddings_, ids); }

  at::Tensor forward(const BackboneInput& in, KvCache* cache) const override {
    const int64_t B = in.embeds.size(0), S = in.embeds.size(1);
    const int64_t H = spec_.num_attention_heads, D = spec_.head_dim, C = spec_.hidden_size;
    const at::Tensor full_mask = cache != nullptr ? at::cat({cache->key_mask, in.key_mask}, 1) : in.key_mask;
    // (B, 1, S, K) causal/padding mask + (B, H, 1, K) ALiBi -> (B, H, S, K)
    const at::Tensor bias = attentionBias(full_mask, S, dtype_) + alibiBias(slopes_, full_mask, dtype_);
    const Activation act = static_cast<Activation>(spec_.activation);
    at::Tensor h = layerNorm(in.embeds, emb_norm_weight_, emb_norm_bias_, spec_.norm_eps);
    for (size_t i = 0; i < layers_.size(); ++i) {
      const Layer& l = layers_[i];
      const at::Tensor x = layerNorm(h, l.input_norm_weight, l.input_norm_bias, spec_.norm_eps);
      // (B, S, 3C) viewed (B, S, H, 3, D): each head's query, key and value side by side
      const at::Tensor qkv = linear(x, l.qkv_weight, l.qkv_bias).view({B, S, H, 3, D});
      const at::Tensor q = qkv.select(3, 0).transpose(1, 2);  // (B, H, S, D)
      at::Tensor k = qkv.select(3, 1).transpose(1, 2);
      at::Tensor v = qkv.select(3, 2).transpose(1, 2);
      appendToCache(cache, i, k, v);
      const at::Tensor att = attention(q, k, v, bias, 1.0 / std::sqrt(static_cast<double>(D)), true);
      h = h + linear(att.transpose(1, 2).reshape({B, S, C}), l.dense_weight, l.dense_bias);
      const at::Tensor y = layerNorm(h, l.post_norm_weight, l.post_norm_bias, spec_.norm_eps);
      h = h + linear(activate(linear(y, l.up_weight, l.up_bias), act), l.down_weight, l.down_bias);
    }
    if (cache != nullptr) cache->key_mask = full_mask;
    return layerNorm(h, ln_f_weight_, ln_f_bias_, spec_.norm_eps);
  }

  std::vector<std::pair<std::string, at::Tensor*>> layerWeights(int64_t index) override {
    checkLayer(index);
    Layer& l = layers_[static_cast<size_t>(index)];
    const std::string p = prefix_ + "h." + std::to_string(index) + ".";
    return {{p + "input_layernorm.weight", &l.input_norm_weight},
            {p + "input_layernorm.bias", &l.input_norm_bias},
            {p + "self_attention.query_key_value.weight", &l.qkv_weight},
            {p + "self_attention.query_key_value.bias", &l.qkv_bias},
            {p + "self_attention.dense.weight", &l.dense_weight},
            {p + "self_attention.dense.bias", &l.dense_bias},
            {p + "post_attention_layernorm.weight", &l.post_norm_weight},
            {p + "post_attention_layernorm.bias", &l.post_norm_bias},
            {p + "mlp.dense_h_to_4h.weight", &l.up_weight},
            {p + "mlp.dense_h_to_4h.bias", &l.up_bias},
            {p + "mlp.dense_4h_to_h.weight", &l.down_weight},
            {p + "mlp.dense_4h_to_h.bias", &l.down_bias}};
  }

  std::unique_ptr<Backbone> clone() const override { return std::make_unique<Bloom>(*this); }

 private:
  struct Layer {
    at::Tensor input_norm_weight, input_norm_bias;  // (C)
    at::Tensor qkv_weight, qkv_bias;                // (3C, C), (3C): per head [q | k | v]
    at::Tensor dense_weight, dense_bias;            // (C, C), (C)
    at::Tensor post_norm_weight, post_norm_bias;    // (C)
    at::Tensor up_weight, up_bias;                  // (4C, C), (4C)
    at::Tensor down_weight, down_bias;              // (C, 4C), (C)
  };

  std::vector<double> slopes_;  // (H) ALiBi slopes
  std::string prefix_;
  at::Tensor word_embeddings_;  // (V, C)
  at::Tensor emb_norm_weight_, emb_norm_bias_, ln_f_weight_, ln_f_bias_;
  std::vector<Layer> layers_;
};

}  // namespace

std::unique_ptr<Backbone> loadBloom(const io::WeightSource& weights, const ModelSpec& spec, at::ScalarType dtype) {
  return std::make_unique<Bloom>(weights, spec, dtype);
}

}  // namespace ptune::models
