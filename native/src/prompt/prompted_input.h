// Assembles the decoder input of a prompted batch, PEFT style: input-level virtual tokens go
// before the token embeddings (mask extended by P ones, labels of virtual positions ignored);
// prefixes fill the KV cache first (mask extended too). Rotary positions come from the full
// mask (cumsum - 1), so virtual tokens take 0..P-1, the text continues from P, and a
// left-padded row gives exactly what it gives alone.
#pragma once

#include <ATen/core/Tensor.h>

#include "models/blocks.h"
#include "prompt/prompt_method.h"

namespace ptune::models {
class Llama;
}

namespace ptune::prompt {

struct PreparedInput {
  at::Tensor embeds;               // (B, Pin+T, C)
  at::Tensor key_mask;             // (B, Pin+T) bool
  at::Tensor positions;            // (B, Pin+T) int64
  models::KvCache cache;           // prefix keys/values (B, G, Pp, D) per layer, or empty
  int64_t input_virtual_tokens = 0;  // Pin
};

/// Rotary positions from a key mask, as transformers derives them for padded batches:
/// cumsum(mask) - 1 on real positions, 1 on padding. mask is (B, S) bool; returns (B, S).
at::Tensor positionsFromMask(const at::Tensor& mask);

/// method may be null (plain model). ids, mask are (B, T) int64.
PreparedInput prepareInput(const models::Llama& model, const PromptMethodImpl* method,
                           const at::Tensor& ids, const at::Tensor& mask, bool training);

/// labels (B, T) -> (B, P+T) with the P virtual positions ignored.
at::Tensor padLabels(const at::Tensor& labels, int64_t P);

}  // namespace ptune::prompt
