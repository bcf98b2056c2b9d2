// Transformer blocks shared by every decoder family: RMSNorm, rotary embeddings, attention
// with grouped-query heads, a key/value cache and a key mask. Hugging Face semantics.
// Dimensions: B batch, S new positions, L cached positions, H query heads, G key/value heads,
// D head dim, C hidden size.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

#include "ptune/ptune.h"

namespace ptune::models {

/// x is (..., C), weight is (C). Normalises in fp32 at least, as transformers' LlamaRMSNorm.
at::Tensor rmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps);

/// Rotary position embedding tables (rotate_half convention).
class Rotary {
 public:
  /// inv_freq as transformers' rope init for config.rope_type computes it.
  Rotary(int64_t head_dim, const LlamaConfig& config);
  /// positions is (B, S) int64; cos and sin are (B, 1, S, D) in dtype.
  void tables(const at::Tensor& positions, at::ScalarType dtype, at::Tensor& cos,
              at::Tensor& sin) const;

 private:
  at::Tensor inv_freq_;  // (D/2) fp32
};

/// x is (B, heads, S, D); cos, sin are (B, 1, S, D).
at::Tensor applyRotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

/// Per-layer keys/values of the positions seen so far (generation, prefixes).
struct KvCache {
  std::vector<at::Tensor> keys;    // per layer (B, G, L, D), rotary already applied
  std::vector<at::Tensor> values;  // per layer (B, G, L, D)
  at::Tensor key_mask;             // (B, L) bool, true where a real (attendable) position
  int64_t length() const { return key_mask.defined() ? key_mask.size(1) : 0; }
};

/// Additive attention bias (B, 1, S, L+S): 0 where query t may see key j (key_mask[b, j] and
/// j <= L + t), the dtype's lowest value elsewhere (never -inf, so fully masked rows stay finite).
/// key_mask is (B, L+S) bool.
/// Additive attention bias (B, 1, S, K) for the last S of K cache slots: causal, padding keys
/// hidden, and with window > 0 only the last `window` slots up to each query (q - k < window,
/// transformers' sliding-window mask, in cache slots as it counts them).
at::Tensor attentionBias(const at::Tensor& key_mask, int64_t new_positions, at::ScalarType dtype,
                         int64_t window = 0);

/// Scaled dot-product attention with grouped-query heads. q is (B, H, S, D); k, v are
/// (B, G, K, D) with H % G == 0; bias is (B, 1, S, K). Returns (B, H, S, D).
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const at::Tensor& bias, double scale);

}  // namespace ptune::models
