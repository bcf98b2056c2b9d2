// Input-level prompts: a soft prompt (P, C) placed before the token embeddings, PEFT style.
// Virtual tokens take positions 0..P-1 and the text continues from P; the attention mask is
// extended by P ones; labels of virtual positions are ignored (-100).
#pragma once

#include <ATen/core/Tensor.h>

namespace ptune::models {
class Llama;
}

namespace ptune::prompt {

constexpr int64_t kIgnoreIndex = -100;

/// The decoder input of a prompted batch.
struct PromptedInput {
  at::Tensor embeds;     // (B, P+T, C)
  at::Tensor key_mask;   // (B, P+T) bool
  at::Tensor positions;  // (B, P+T) int64
};

/// Rotary positions from a key mask, as transformers derives them for padded batches:
/// cumsum(mask) - 1 on real positions, 1 on padding. mask is (B, S) bool; returns (B, S).
at::Tensor positionsFromMask(const at::Tensor& mask);

/// prompt is (P, C) or undefined (P = 0); ids, mask are (B, T) int64.
PromptedInput prependPrompt(const models::Llama& model, const at::Tensor& prompt,
                            const at::Tensor& ids, const at::Tensor& mask);

/// labels (B, T) -> (B, P+T) with the P virtual positions ignored.
at::Tensor padLabels(const at::Tensor& labels, int64_t P);

}  // namespace ptune::prompt
