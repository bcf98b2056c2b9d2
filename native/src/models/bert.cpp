// BertModel / BertForMaskedLM (MiniLM and BGE are BERTs) with Hugging Face semantics: word +
// learned position + token-type embeddings, then LayerNorm (virtual tokens included: PEFT
// prepends them to inputs_embeds with token type 0); bidirectional attention over the padding
// mask (prefix keys always visible); post-LN blocks; the configured activation (exact GELU);
// the MLM head (cls.predictions.*) where the checkpoint has one. Positions come from the mask:
// with a prompt the virtual tokens take 0..P-1 and the text P.., and with a prefix the text
// also starts at P, as BertEmbeddings offsets positions by the cache length.
#include <ATen/ATen.h>

#include <cmath>
#include <string>

#include "core/check.h"
#include "io/weight_source.h"
#include "models/backbone.h"

namespace ptune::models {
namespace {

class Bert final : public Backbone {
 public:
  Bert(const io::WeightSource& weights, const ModelSpec& spec, at::ScalarType dtype) : Backbone(spec, dtype) {
    const int64_t C = spec.hidden_size, V = spec.vocab_size, I = spec.intermediate_size;
    PTUNE_CHECK(spec.num_key_value_heads == spec.num_attention_heads &&
                    spec.head_dim * spec.num_attention_heads == C,
                "config.json: BERT needs hidden_size (", C, ") = num_attention_heads (",
                spec.num_attention_heads, ") x head_dim");
    PTUNE_CHECK(spec.max_position_embeddings > 0 && spec.type_vocab_size > 0,
                "config.json: max_position_embeddings and type_vocab_size must be positive");
    // BertForMaskedLM checkpoints prefix the encoder with "bert."; BertModel's do not.
    prefix_ = weights.contains("bert.embeddings.word_embeddings.weight") ? "bert." : "";
    const auto w = [&](const std::string& name, std::vector<int64_t> shape) {
      return weights.load(prefix_ + name, shape, dtype);
    };
    // Old TensorFlow-converted checkpoints name LayerNorm parameters gamma / beta.
    const auto norm = [&](const std::string& base, at::Tensor& weight, at::Tensor& bias) {
      const bool old = !weights.contains(prefix_ + base + ".weight") && weights.contains(prefix_ + base + ".gamma");
      weight = w(base + (old ? ".gamma" : ".weight"), {C});
      bias = w(base + (old ? ".beta" : ".bias"), {C});
    };
    word_embeddings_ = w("embeddings.word_embeddings.weight", {V, C});
    position_embeddings_ = w("embeddings.position_embeddings.weight", {spec.max_position_embeddings, C});
    token_type_embeddings_ = w("embeddings.token_type_embeddings.weight", {spec.type_vocab_size, C});
    norm("embeddings.LayerNorm", emb_norm_weight_, emb_norm_bias_);
    for (int64_t i = 0; i < spec.num_hidden_layers; ++i) {
      const std::string p = "encoder.layer." + std::to_string(i) + ".";
      Layer l;
      l.query_weight = w(p + "attention.self.query.weight", {C, C});
      l.query_bias = w(p + "attention.self.query.bias", {C});
      l.key_weight = w(p + "attention.self.key.weight", {C, C});
      l.key_bias = w(p + "attention.self.key.bias", {C});
      l.value_weight = w(p + "attention.self.value.weight", {C, C});
      l.value_bias = w(p + "attention.self.value.bias", {C});
      l.attn_out_weight = w(p + "attention.output.dense.weight", {C, C});
      l.attn_out_bias = w(p + "attention.output.dense.bias", {C});
      norm(p + "attention.output.LayerNorm", l.attn_norm_weight, l.attn_norm_bias);
      l.up_weight = w(p + "intermediate.dense.weight", {I, C});
      l.up_bias = w(p + "intermediate.dense.bias", {I});
      l.down_weight = w(p + "output.dense.weight", {C, I});
      l.down_bias = w(p + "output.dense.bias", {C});
      norm(p + "output.LayerNorm", l.out_norm_weight, l.out_norm_bias);
      layers_.push_back(std::move(l));
    }
    if (weights.contains(prefix_ + "pooler.dense.weight")) {
      pooler_weight_ = w("pooler.dense.weight", {C, C});
      pooler_bias_ = w("pooler.dense.bias", {C});
    }
    if (weights.contains("cls.predictions.transform.dense.weight")) {
      const std::string t = "cls.predictions.transform.";
      const bool old = !weights.contains(t + "LayerNorm.weight") && weights.contains(t + "LayerNorm.gamma");
      const at::Tensor decoder = weights.contains("cls.predictions.decoder.weight") && !spec.tie_word_embeddings
                                     ? weights.load("cls.predictions.decoder.weight", {V, C}, dtype)
                                     : word_embeddings_;
      head_ = heads::LmHead::mlm(weights.load(t + "dense.weight", {C, C}, dtype),
                                 weights.load(t + "dense.bias", {C}, dtype), static_cast<Activation>(spec.activation),
                                 weights.load(t + (old ? "LayerNorm.gamma" : "LayerNorm.weight"), {C}, dtype),
                                 weights.load(t + (old ? "LayerNorm.beta" : "LayerNorm.bias"), {C}, dtype),
                                 spec.norm_eps, decoder, weights.load("cls.predictions.bias", {V}, dtype));
    }
  }

  bool causal() const override { return false; }

  bool hasPooler() const override { return pooler_weight_.defined(); }

  // BertPooler: tanh(dense(x)) (transformers applies it to position 0).
  at::Tensor pool(const at::Tensor& hidden) const override {
    return pooler_weight_.defined() ? at::tanh(linear(hidden, pooler_weight_, pooler_bias_)) : hidden;
  }

  at::Tensor embed(const at::Tensor& ids) const override { return at::embedding(word_embeddings_, ids); }

  at::Tensor forward(const BackboneInput& in, KvCache* cache) const override {
    const int64_t B = in.embeds.size(0), S = in.embeds.size(1);
    const int64_t H = spec_.num_attention_heads, D = spec_.head_dim, C = spec_.hidden_size;
    const at::Tensor full_mask = cache != nullptr ? at::cat({cache->key_mask, in.key_mask}, 1) : in.key_mask;
    const at::Tensor bias = attentionBias(full_mask, S, dtype_, /*causal=*/false);  // (B, 1, S, K)
    const Activation act = static_cast<Activation>(spec_.activation);
    const at::Tensor types = in.token_types.defined()
                                 ? in.token_types
                                 : at::zeros({B, S}, at::TensorOptions().dtype(at::kLong).device(device_));
    at::Tensor h = in.embeds + at::embedding(position_embeddings_, in.positions) +
                   at::embedding(token_type_embeddings_, types);
    h = layerNorm(h, emb_norm_weight_, emb_norm_bias_, spec_.norm_eps);
    for (size_t i = 0; i < layers_.size(); ++i) {
      const Layer& l = layers_[i];
      const at::Tensor q = linear(h, l.query_weight, l.query_bias).view({B, S, H, D}).transpose(1, 2);
      at::Tensor k = linear(h, l.key_weight, l.key_bias).view({B, S, H, D}).transpose(1, 2);
      at::Tensor v = linear(h, l.value_weight, l.value_bias).view({B, S, H, D}).transpose(1, 2);
      appendToCache(cache, i, k, v);
      const at::Tensor att = attention(q, k, v, bias, 1.0 / std::sqrt(static_cast<double>(D)), false);
      h = layerNorm(h + linear(att.transpose(1, 2).reshape({B, S, C}), l.attn_out_weight, l.attn_out_bias),
                    l.attn_norm_weight, l.attn_norm_bias, spec_.norm_eps);
      const at::Tensor up = activate(linear(h, l.up_weight, l.up_bias), act);
      h = layerNorm(h + linear(up, l.down_weight, l.down_bias), l.out_norm_weight, l.out_norm_bias,
                    spec_.norm_eps);
    }
    if (cache != nullptr) cache->key_mask = full_mask;
    return h;
  }

  std::vector<std::pair<std::string, at::Tensor*>> layerWeights(int64_t index) override {
    checkLayer(index);
    Layer& l = layers_[static_cast<size_t>(index)];
    const std::string p = prefix_ + "encoder.layer." + std::to_string(index) + ".";
    return {{p + "attention.self.query.weight", &l.query_weight},
            {p + "attention.self.query.bias", &l.query_bias},
            {p + "attention.self.key.weight", &l.key_weight},
            {p + "attention.self.key.bias", &l.key_bias},
            {p + "attention.self.value.weight", &l.value_weight},
            {p + "attention.self.value.bias", &l.value_bias},
            {p + "attention.output.dense.weight", &l.attn_out_weight},
            {p + "attention.output.dense.bias", &l.attn_out_bias},
            {p + "attention.output.LayerNorm.weight", &l.attn_norm_weight},
            {p + "attention.output.LayerNorm.bias", &l.attn_norm_bias},
            {p + "intermediate.dense.weight", &l.up_weight},
            {p + "intermediate.dense.bias", &l.up_bias},
            {p + "output.dense.weight", &l.down_weight},
            {p + "output.dense.bias", &l.down_bias},
            {p + "output.LayerNorm.weight", &l.out_norm_weight},
            {p + "output.LayerNorm.bias", &l.out_norm_bias}};
  }

  std::unique_ptr<Backbone> clone() const override { return std::make_unique<Bert>(*this); }

 private:
  struct Layer {
    at::Tensor query_weight, query_bias, key_weight, key_bias, value_weight, value_bias;  // (C, C), (C)
    at::Tensor attn_out_weight, attn_out_bias;    // (C, C), (C)
    at::Tensor attn_norm_weight, attn_norm_bias;  // (C)
    at::Tensor up_weight, up_bias;                // (I, C), (I)
    at::Tensor down_weight, down_bias;            // (C, I), (C)
    at::Tensor out_norm_weight, out_norm_bias;    // (C)
  };

  std::string prefix_;
  at::Tensor word_embeddings_;        // (V, C)
  at::Tensor position_embeddings_;    // (max_position_embeddings, C)
  at::Tensor token_type_embeddings_;  // (type_vocab_size, C)
  at::Tensor emb_norm_weight_, emb_norm_bias_;
  at::Tensor pooler_weight_, pooler_bias_;  // (C, C), (C) or undefined
  std::vector<Layer> layers_;
};

}  // namespace

std::unique_ptr<Backbone> loadBert(const io::WeightSource& weights, const ModelSpec& spec, at::ScalarType dtype) {
  return std::make_unique<Bert>(weights, spec, dtype);
}

}  // namespace ptune::models
