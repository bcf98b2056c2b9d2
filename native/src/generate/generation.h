// Autoregressive decoding with a KV cache: the (prompted, left-padded) input is encoded once,
// then one position per step. Greedy or sampling with transformers' warpers in its order:
// temperature, top-k, top-p.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

#include "ptune/ptune.h"

namespace ptune::models {
class Backbone;
}
namespace ptune::prompt {
class PromptMethodImpl;
}

namespace ptune::generate {

/// Picks the next token of each row. logits is (B, V); returns (B) int64.
at::Tensor selectNextTokens(const at::Tensor& logits, const GenerateOptions& options,
                            at::Generator& generator);

/// method may be null; ids, mask are (B, T) left-padded; returns (B, N) tokens (pad after a
/// row finished) and fills lengths (B) with tokens generated per row, EOS included.
at::Tensor generate(const models::Backbone& model, const prompt::PromptMethodImpl* method,
                    const at::Tensor& ids,
                    const at::Tensor& mask, const std::vector<int64_t>& eos_ids,
                    const GenerateOptions& options, std::vector<int64_t>& lengths);

}  // namespace ptune::generate
