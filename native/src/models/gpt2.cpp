// GPT2LMHeadModel with Hugging Face semantics: learned absolute positions added to the input
// embeddings (virtual tokens take positions like tokens: PEFT prepends them to inputs_embeds),
// pre-LN blocks with LayerNorm, Conv1D weights stored (in, out) and used as stored, fused
// c_attn [q | k | v], the configured activation (gelu_new), final ln_f, LM head tied to wte.
#include <ATen/ATen.h>

#include <cmath>
#include <string>

#include "core/check.h"
#include "io/weight_source.h"
#include "models/backbone.h"

namespace ptune::models {
namespace {

/// transformers' Conv1D: x (..., in) @ weight (in, out) + bias (out).
at::Tensor conv1d(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  if (fewRows(x)) return rowsTimesMatrix(x, weight, true, bias);
  return at::matmul(x, weight) + bias;
}

class Gpt2 final : public Backbone {
 public:
  Gpt2(const io::WeightSource& weights, const ModelSpec& spec, at::ScalarType dtype) : Backbone(spec, dtype) {
    const int64_t C = spec.hidden_size, V = spec.vocab_size, I = spec.intermediate_size;
    PTUNE_CHECK(spec.num_key_value_heads == spec.num_attention_heads &&
                    spec.head_dim * spec.num_attention_heads == C,
                "config.json: GPT-2 needs n_embd (", C, ") = n_head (", spec.num_attention_heads, ") x head_dim");
    PTUNE_CHECK(spec.max_position_embeddings > 0, "config.json: n_positions must be positive");
    // GPT2LMHeadModel checkpoints prefix the backbone with "transformer."; GPT2Model's do not.
    prefix_ = weights.contains("transformer.wte.weight") ? "transformer." : "";
    const auto w = [&](const std::string& name, std::vector<int64_t> shape) {
      return weights.load(prefix_ + name, shape, dtype);
    };
    wte_ = w("wte.weight", {V, C});
    wpe_ = w("wpe.weight", {spec.max_position_embeddings, C});
    ln_f_weight_ = w("ln_f.weight", {C});
    ln_f_bias_ = w("ln_f.bias", {C});
    if (weights.contains("lm_head.weight") && !spec.tie_word_embeddings) {
      head_ = heads::LmHead::decoder(weights.load("lm_head.weight", {V, C}, dtype));
    } else {
      head_ = heads::LmHead::decoder(wte_);  // tied (GPT2LMHeadModel's _tied_weights_keys)
    }
    for (int64_t i = 0; i < spec.num_hidden_layers; ++i) {
      const std::string p = "h." + std::to_string(i) + ".";
      Layer l;
      l.ln_1_weight = w(p + "ln_1.weight", {C});
      l.ln_1_bias = w(p + "ln_1.bias", {C});
      l.c_attn_weight = w(p + "attn.c_attn.weight", {C, 3 * C});
      l.c_attn_bias = w(p + "attn.c_attn.bias", {3 * C});
      l.c_proj_weight = w(p + "attn.c_proj.weight", {C, C});
      l.c_proj_bias = w(p + "attn.c_proj.bias", {C});
      l.ln_2_weight = w(p + "ln_2.weight", {C});
      l.ln_2_bias = w(p + "ln_2.bias", {C});
      l.c_fc_weight = w(p + "mlp.c_fc.weight", {C, I});
      l.c_fc_bias = w(p + "mlp.c_fc.bias", {I});
      l.mlp_proj_weight = w(p + "mlp.c_proj.weight", {I, C});
      l.mlp_proj_bias = w(p + "mlp.c_proj.bias", {C});
      layers_.push_back(std::move(l));
    }
  }

  bool causal() const override { return true; }

  at::Tensor embed(const at::Tensor& ids) const override { return at::embedding(wte_, ids); }

  at::Tensor forward(const BackboneInput& in, KvCache* cache) const override {
    const int64_t B = in.embeds.size(0), S = in.embeds.size(1);
    const int64_t H = spec_.num_attention_heads, D = spec_.head_dim, C = spec_.hidden_size;
    const at::Tensor full_mask = cache != nullptr ? at::cat({cache->key_mask, in.key_mask}, 1) : in.key_mask;
    const at::Tensor bias = attentionBias(full_mask, S, dtype_);  // (B, 1, S, L+S)
    const Activation act = static_cast<Activation>(spec_.activation);
    at::Tensor h = in.embeds + at::embedding(wpe_, in.positions);  // (B, S, C)
    for (size_t i = 0; i < layers_.size(); ++i) {
      const Layer& l = layers_[i];
      // attention: c_attn (B, S, 3C) = [q | k | v], heads contiguous within each
      const at::Tensor qkv = conv1d(layerNorm(h, l.ln_1_weight, l.ln_1_bias, spec_.norm_eps), l.c_attn_weight,
                                    l.c_attn_bias);
      const at::Tensor q = qkv.narrow(2, 0, C).view({B, S, H, D}).transpose(1, 2);  // (B, H, S, D)
      at::Tensor k = qkv.narrow(2, C, C).view({B, S, H, D}).transpose(1, 2);
      at::Tensor v = qkv.narrow(2, 2 * C, C).view({B, S, H, D}).transpose(1, 2);
      appendToCache(cache, i, k, v);
      const at::Tensor att = attention(q, k, v, bias, 1.0 / std::sqrt(static_cast<double>(D)), true);
      h = h + conv1d(att.transpose(1, 2).reshape({B, S, C}), l.c_proj_weight, l.c_proj_bias);
      const at::Tensor x = layerNorm(h, l.ln_2_weight, l.ln_2_bias, spec_.norm_eps);
      h = h + conv1d(activate(conv1d(x, l.c_fc_weight, l.c_fc_bias), act), l.mlp_proj_weight, l.mlp_proj_bias);
    }
    if (cache != nullptr) cache->key_mask = full_mask;
    return layerNorm(h, ln_f_weight_, ln_f_bias_, spec_.norm_eps);
  }

  std::vector<std::pair<std::string, at::Tensor*>> layerWeights(int64_t index) override {
    checkLayer(index);
    Layer& l = layers_[static_cast<size_t>(index)];
    const std::string p = prefix_ + "h." + std::to_string(index) + ".";
    return {{p + "ln_1.weight", &l.ln_1_weight},       {p + "ln_1.bias", &l.ln_1_bias},
            {p + "attn.c_attn.weight", &l.c_attn_weight}, {p + "attn.c_attn.bias", &l.c_attn_bias},
            {p + "attn.c_proj.weight", &l.c_proj_weight}, {p + "attn.c_proj.bias", &l.c_proj_bias},
            {p + "ln_2.weight", &l.ln_2_weight},       {p + "ln_2.bias", &l.ln_2_bias},
            {p + "mlp.c_fc.weight", &l.c_fc_weight},   {p + "mlp.c_fc.bias", &l.c_fc_bias},
            {p + "mlp.c_proj.weight", &l.mlp_proj_weight}, {p + "mlp.c_proj.bias", &l.mlp_proj_bias}};
  }

  std::unique_ptr<Backbone> clone() const override { return std::make_unique<Gpt2>(*this); }

 private:
  struct Layer {
    at::Tensor ln_1_weight, ln_1_bias;          // (C)
    at::Tensor c_attn_weight, c_attn_bias;      // (C, 3C), (3C)
    at::Tensor c_proj_weight, c_proj_bias;      // (C, C), (C)
    at::Tensor ln_2_weight, ln_2_bias;          // (C)
    at::Tensor c_fc_weight, c_fc_bias;          // (C, I), (I)
    at::Tensor mlp_proj_weight, mlp_proj_bias;  // (I, C), (C)
  };

  std::string prefix_;
  at::Tensor wte_;  // (V, C)
  at::Tensor wpe_;  // (n_positions, C)
  at::Tensor ln_f_weight_, ln_f_bias_;
  std::vector<Layer> layers_;
};

}  // namespace

std::unique_ptr<Backbone> loadGpt2(const io::WeightSource& weights, const ModelSpec& spec, at::ScalarType dtype) {
  return std::make_unique<Gpt2>(weights, spec, dtype);
}

}  // namespace ptune::models
