// Fused LM head + cross-entropy, computed in row chunks so that the (N, V) logits never exist
// whole (the largest activation of a training step). The gradient with respect to the hidden
// states is formed chunk by chunk during the forward pass; the head weight is frozen.
#pragma once

#include <ATen/core/Tensor.h>

namespace ptune::loss {

/// Sum over rows with label != -100 of -log softmax(hidden @ weight^T + bias)[label].
/// hidden is (N, C) (may require grad), weight is (V, C) (frozen), labels is (N) int64, bias is
/// (V) (frozen; an MLM head's) or undefined. chunk_rows = 0 picks a chunk of about 8M logits, at
/// least 256 rows.
/// Differentiable in hidden.
at::Tensor linearCrossEntropySum(const at::Tensor& hidden, const at::Tensor& weight,
                                 const at::Tensor& labels, int64_t chunk_rows = 0,
                                 const at::Tensor& bias = at::Tensor());

}  // namespace ptune::loss
