// One interface for every model family (native/src/models/<family>.cpp): the frozen network
// between the input embeddings (the space prompts live in) and the final hidden states, plus
// its LM or MLM head. Prompt methods, the loss, generation and the façade see only this.
// Dimensions: B batch, S new positions, C hidden, V vocabulary.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "heads/lm_head.h"
#include "models/blocks.h"
#include "ptune/ptune.h"

namespace ptune::io {
class WeightSource;
}

namespace ptune::models {

/// What enters the network for S new positions.
struct BackboneInput {
  at::Tensor embeds;       // (B, S, C) input embeddings: embed(ids), prompts prepended
  at::Tensor positions;    // (B, S) int64 absolute positions (rotary / learned; ALiBi counts the mask)
  at::Tensor key_mask;     // (B, S) bool, true on real positions
  at::Tensor token_types;  // (B, S) int64 segment ids (BERT), or undefined for all 0
};

class Backbone {
 public:
  Backbone(const ModelSpec& spec, at::ScalarType dtype) : spec_(spec), dtype_(dtype) {}
  virtual ~Backbone() = default;

  const ModelSpec& spec() const { return spec_; }
  ModelFamily family() const { return static_cast<ModelFamily>(spec_.family); }
  /// The compute dtype of the frozen weights and activations (core/dtypes.h).
  at::ScalarType dtype() const { return dtype_; }
  /// Where the weights live and the forward pass runs; inputs must be there already.
  at::Device device() const { return device_; }
  /// Decoders attend causally (and generate); encoders attend both ways.
  virtual bool causal() const = 0;
  int64_t hidden() const { return spec_.hidden_size; }
  int64_t layers() const { return spec_.num_hidden_layers; }
  int64_t kvHeads() const { return spec_.num_key_value_heads; }
  int64_t headDim() const { return spec_.head_dim; }
  int64_t vocab() const { return spec_.vocab_size; }
  /// The longest sequence (cached + new positions) the model has positions for; 0 = no limit.
  int64_t maxPositions() const { return spec_.max_position_embeddings; }

  /// Input embeddings of token ids (B, S) -> (B, S, C): the table PEFT's prompts are drawn
  /// from and prepended to (get_input_embeddings); position terms and norms come in forward.
  virtual at::Tensor embed(const at::Tensor& ids) const = 0;

  /// Runs the network on the new positions after the cached ones (prefixes, decoding). The
  /// new keys/values are appended to the cache when one is given. Returns the final hidden
  /// states (B, S, C), after the family's final norm.
  virtual at::Tensor forward(const BackboneInput& in, KvCache* cache) const = 0;

  /// An empty cache for batch size B (keys/values (B, G, 0, D) per layer).
  KvCache emptyCache(int64_t B) const;

  /// Handles to layer `index`'s weights under their checkpoint names, for two-stage training
  /// (a clone replaces them with trainable copies; clones share every other weight).
  virtual std::vector<std::pair<std::string, at::Tensor*>> layerWeights(int64_t index) = 0;

  /// A shallow copy sharing every weight tensor (two-stage training replaces some).
  virtual std::unique_ptr<Backbone> clone() const = 0;

  /// BERT's pooler, tanh(dense(x)) on a (..., C) hidden state, where the checkpoint has one
  /// (BertModel); other families and checkpoints without it have none.
  virtual bool hasPooler() const { return false; }
  virtual at::Tensor pool(const at::Tensor& hidden) const { return hidden; }

  /// The LM head (decoders) or MLM head (encoders that have one), else null.
  const heads::LmHead* head() const { return head_ ? &*head_ : nullptr; }
  /// The head, or an error naming the family when the checkpoint has none.
  const heads::LmHead& requireHead() const;

 protected:
  /// Checks that layer `index` exists.
  void checkLayer(int64_t index) const;

  ModelSpec spec_;
  at::ScalarType dtype_;
  at::Device device_ = at::kCPU;  // set once by loadBackbone
  std::optional<heads::LmHead> head_;

  friend std::unique_ptr<Backbone> loadBackbone(const io::WeightSource& weights, const ModelSpec& spec,
                                                at::ScalarType dtype, at::Device device);
};

/// Loads the backbone of spec.family from weights (registry: one factory per family file).
std::unique_ptr<Backbone> loadBackbone(const io::WeightSource& weights, const ModelSpec& spec,
                                       at::ScalarType dtype);
/// The same with every weight converted to dtype and moved to device once, as it is loaded.
std::unique_ptr<Backbone> loadBackbone(const io::WeightSource& weights, const ModelSpec& spec,
                                       at::ScalarType dtype, at::Device device);

/// The family's name as config.json spells its model_type.
const char* familyName(ModelFamily family);

// One factory per family file.
std::unique_ptr<Backbone> loadLlama(const io::WeightSource& weights, const ModelSpec& spec, at::ScalarType dtype);
std::unique_ptr<Backbone> loadGpt2(const io::WeightSource& weights, const ModelSpec& spec, at::ScalarType dtype);
std::unique_ptr<Backbone> loadBloom(const io::WeightSource& weights, const ModelSpec& spec, at::ScalarType dtype);
std::unique_ptr<Backbone> loadBert(const io::WeightSource& weights, const ModelSpec& spec, at::ScalarType dtype);

}  // namespace ptune::models
