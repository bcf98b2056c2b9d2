#include "models/backbone.h"

#include <ATen/ATen.h>

#include "core/check.h"
#include "io/weight_source.h"

namespace ptune::models {

KvCache Backbone::emptyCache(int64_t B) const {
  KvCache cache;
  const auto opts = at::TensorOptions().dtype(dtype_).device(device_);
  for (int64_t i = 0; i < layers(); ++i) {
    cache.keys.push_back(at::empty({B, kvHeads(), 0, headDim()}, opts));
    cache.values.push_back(at::empty({B, kvHeads(), 0, headDim()}, opts));
  }
  cache.key_mask = at::empty({B, 0}, at::TensorOptions().dtype(at::kBool).device(device_));
  return cache;
}

const heads::LmHead& Backbone::requireHead() const {
  PTUNE_CHECK(head_.has_value(), "this ", familyName(family()),
              " checkpoint has no LM / MLM head (e.g. a sentence-embedding export): use its hidden "
              "states (ptune embed) instead of logits");
  return *head_;
}

void Backbone::checkLayer(int64_t index) const {
  PTUNE_CHECK(index >= 0 && index < layers(), "layer ", index, " does not exist (the model has ",
              layers(), ")");
}

const char* familyName(ModelFamily family) {
  switch (family) {
    case ModelFamily::kLlama: return "llama";
    case ModelFamily::kGpt2: return "gpt2";
    case ModelFamily::kBloom: return "bloom";
    case ModelFamily::kBert: return "bert";
  }
  return "unknown";
}

namespace {
void validate(const ModelSpec& s) {
  PTUNE_CHECK(s.vocab_size > 0 && s.hidden_size > 0 && s.intermediate_size > 0 &&
                  s.num_hidden_layers > 0 && s.num_attention_heads > 0 && s.num_key_value_heads > 0 &&
                  s.head_dim > 0,
              "config.json: vocab_size, hidden_size, intermediate_size, num_hidden_layers, "
              "num_attention_heads, num_key_value_heads and head_dim must all be positive");
  PTUNE_CHECK(s.num_attention_heads % s.num_key_value_heads == 0,
              "config.json: num_attention_heads (", s.num_attention_heads,
              ") must be a multiple of num_key_value_heads (", s.num_key_value_heads, ")");
  PTUNE_CHECK(s.norm_eps > 0, "config.json: the norm epsilon must be positive, got ", s.norm_eps);
  PTUNE_CHECK(s.max_position_embeddings >= 0, "max_position_embeddings must be >= 0");
  PTUNE_CHECK(s.activation >= 0 && s.activation <= static_cast<int32_t>(Activation::kRelu),
              "unknown activation ", s.activation);
}
}  // namespace

namespace {
/// A weight source whose tensors arrive on `device` (each weight is read from the host, converted
/// and copied once).
class DeviceWeights final : public io::WeightSource {
 public:
  DeviceWeights(const io::WeightSource& inner, at::Device device) : inner_(inner), device_(device) {}
  bool contains(const std::string& name) const override { return inner_.contains(name); }
  at::Tensor load(const std::string& name, at::ScalarType dtype) const override {
    return inner_.load(name, dtype).to(device_);
  }
  using WeightSource::load;
  std::vector<int64_t> shape(const std::string& name) const override { return inner_.shape(name); }
  const std::string& origin() const override { return inner_.origin(); }
  std::string fileHolding(const std::string& name) const override { return inner_.fileHolding(name); }

 private:
  const io::WeightSource& inner_;
  at::Device device_;
};
}  // namespace

std::unique_ptr<Backbone> loadBackbone(const io::WeightSource& weights, const ModelSpec& spec,
                                       at::ScalarType dtype, at::Device device) {
  if (device.is_cpu()) return loadBackbone(weights, spec, dtype);
  std::unique_ptr<Backbone> model = loadBackbone(DeviceWeights(weights, device), spec, dtype);
  model->device_ = device;
  return model;
}

std::unique_ptr<Backbone> loadBackbone(const io::WeightSource& weights, const ModelSpec& spec,
                                       at::ScalarType dtype) {
  validate(spec);
  switch (static_cast<ModelFamily>(spec.family)) {
    case ModelFamily::kLlama: return loadLlama(weights, spec, dtype);
    case ModelFamily::kGpt2: return loadGpt2(weights, spec, dtype);
    case ModelFamily::kBloom: return loadBloom(weights, spec, dtype);
    case ModelFamily::kBert: return loadBert(weights, spec, dtype);
  }
  throw Error(detail::concat("unknown model family ", spec.family));
}

}  // namespace ptune::models
