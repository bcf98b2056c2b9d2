// Assembles the network input of a prompted batch, PEFT style: input-level virtual tokens go
// before the token embeddings (mask extended by P ones, token type 0, labels of virtual
// positions ignored); prefixes fill the KV cache first (mask extended too). Positions come from
// the full mask (cumsum - 1), so virtual tokens take 0..P-1, the text continues from P (after a
// prefix too), and a left-padded row gives exactly what it gives alone.
#pragma once

#include <ATen/core/Tensor.h>

#include "models/backbone.h"
#include "prompt/prompt_method.h"

namespace ptune::prompt {

struct PreparedInput {
  models::BackboneInput input;       // embeds (B, Pin+T, C), positions, key_mask, token_types
  models::KvCache cache;             // prefix keys/values (B, G, Pp, D) per layer, or empty
  int64_t input_virtual_tokens = 0;  // Pin
};

/// Positions from a key mask, as transformers' generate derives them for padded batches:
/// cumsum(mask) - 1 on real positions, 1 on padding. mask is (B, S) bool; returns (B, S).
at::Tensor positionsFromMask(const at::Tensor& mask);

/// method may be null (plain model). ids, mask are (B, T) int64; token_types (B, T) int64 or
/// undefined (all 0).
PreparedInput prepareInput(const models::Backbone& model, const PromptMethodImpl* method,
                           const at::Tensor& ids, const at::Tensor& mask, bool training,
                           const at::Tensor& token_types = at::Tensor());

/// Checks that every id lies in the vocabulary (ids any shape, int64).
void checkTokenIds(const models::Backbone& model, const at::Tensor& ids);

/// labels (B, T) -> (B, P+T) with the P virtual positions ignored.
at::Tensor padLabels(const at::Tensor& labels, int64_t P);

}  // namespace ptune::prompt
