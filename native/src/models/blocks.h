// Transformer blocks shared by every model family, each once: norms (RMSNorm, LayerNorm),
// activations, position schemes (rotary, ALiBi; learned absolute positions are an embedding
// table in the family's file), attention masks (causal, bidirectional, sliding window), grouped-
// query attention and the key/value cache. Hugging Face semantics.
// Dimensions: B batch, S new positions, L cached positions, K = L + S key slots, H query heads,
// G key/value heads, D head dim, C hidden size.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

#include "ptune/ptune.h"

namespace ptune::models {

/// x is (..., C), weight is (C). Normalises in fp32 at least, as transformers' LlamaRMSNorm.
/// CPU fp32/fp64: one fused kernel (elementwise/fused.h); elsewhere composed libtorch ops.
at::Tensor rmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps);

/// x is (..., C), weight and bias are (C): torch.nn.LayerNorm.
at::Tensor layerNorm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps);

/// The activation `kind` (ptune::Activation) applied elementwise.
at::Tensor activate(const at::Tensor& x, Activation kind);

/// activate(gate, kind) * up: the gated MLP of Llama-family blocks. SiLU on CPU in fp32/fp64 is
/// one fused kernel (elementwise/fused.h).
at::Tensor gatedActivation(const at::Tensor& gate, const at::Tensor& up, Activation kind);

/// x (..., in) @ weight (out, in)^T + bias (out) or no bias when undefined. At most kFewRows rows
/// of x (decoding) go through rowsTimesMatrix.
at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);

/// Rows up to which linear() multiplies row by row (matrix-vector products) instead of one GEMM.
constexpr int64_t kFewRows = 4;

/// Whether x (..., in) has at most kFewRows rows on CPU: what rowsTimesMatrix is for.
bool fewRows(const at::Tensor& x);

/// x (..., in) times a matrix, one matrix-vector product per row of x: matrix is (out, in), or
/// (in, out) with in_out (GPT-2's Conv1D); plus bias (out) when defined. Returns (..., out).
at::Tensor rowsTimesMatrix(const at::Tensor& x, const at::Tensor& matrix, bool in_out, const at::Tensor& bias);

/// Rotary position embedding tables (rotate_half convention).
class Rotary {
 public:
  /// inv_freq as transformers' rope init for spec.rope_type computes it.
  Rotary(int64_t head_dim, const ModelSpec& spec);
  /// positions is (B, S) int64; cos and sin are (B, 1, S, D) in dtype.
  void tables(const at::Tensor& positions, at::ScalarType dtype, at::Tensor& cos,
              at::Tensor& sin) const;

 private:
  at::Tensor inv_freq_;  // (D/2) fp32
};

/// x is (B, heads, S, D); cos, sin are (B, 1, S, D): x * cos + rotate_half(x) * sin, composed.
at::Tensor applyRotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

/// The same for x in the projections' layout (B, S, heads, D), returning (B, heads, S, D): on CPU
/// in fp32/fp64 one fused kernel that also moves the heads (elementwise/fused.h), elsewhere
/// applyRotary(x.transpose(1, 2), cos, sin).
at::Tensor rotaryHeads(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

/// ALiBi slopes (H) as BLOOM's build_alibi_tensor: for c = 2^floor(log2 H), (2^(-8/c))^k for
/// k = 1..c, then for the remaining H - c heads the odd powers (2^(-4/c))^k, k = 1, 3, 5, ...
std::vector<double> alibiSlopes(int64_t heads);

/// ALiBi's per-key bias (B, H, 1, K): slope_h * position_j, where key positions count the real
/// slots of key_mask (B, K) bool from 0 (BLOOM: (cumsum(mask) - 1) * mask). Unscaled by 1/sqrt(D).
at::Tensor alibiBias(const std::vector<double>& slopes, const at::Tensor& key_mask, at::ScalarType dtype);

/// Per-layer keys/values of the positions seen so far (generation, prefixes).
struct KvCache {
  std::vector<at::Tensor> keys;    // per layer (B, G, L, D), rotary already applied
  std::vector<at::Tensor> values;  // per layer (B, G, L, D)
  at::Tensor key_mask;             // (B, L) bool, true where a real (attendable) position
  // After reserve(): per layer (B, G, capacity, D) storage that keys/values are the first L
  // slots of, so appending writes in place instead of concatenating (decoding, no autograd).
  std::vector<at::Tensor> key_storage, value_storage;
  int64_t length() const { return key_mask.defined() ? key_mask.size(1) : 0; }
  /// Moves the cache into storage for `capacity` positions (>= length()).
  void reserve(int64_t capacity);
};

/// Additive attention bias (B, 1, S, K) for the last S of K key slots: 0 where a query may see
/// a key, maskFillValue(dtype) elsewhere (core/dtypes.h: fp32's lowest value, half the lowest in
/// bf16 / fp16; never -inf, so fully masked rows stay finite).
/// Padding keys (key_mask (B, K) bool false) are hidden; causal hides later slots; window > 0
/// (causal only) keeps the last `window` slots up to each query (q - k < window, transformers'
/// sliding-window mask, in cache slots as it counts them).
at::Tensor attentionBias(const at::Tensor& key_mask, int64_t new_positions, at::ScalarType dtype,
                         bool causal = true, int64_t window = 0);

/// Scaled dot-product attention with grouped-query heads. q is (B, H, S, D); k, v are
/// (B, G, K, D) with H % G == 0; bias is (B, 1, S, K) or per head (B, H, S, K), additive, its
/// lowest value hiding a key. causal: the bias hides every key after slot K - S + i from query i
/// (decoders), which lets the fused kernel skip them. Returns (B, H, S, D). Softmax in fp32 at
/// least. On CPU in fp32/fp64 this is the fused kernel (attention/fused_attention.h); on other
/// devices, in a PyTorch 2.x build, attentionSdpa(); elsewhere attentionComposed().
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const at::Tensor& bias, double scale, bool causal);

/// Whether this build's libtorch has at::scaled_dot_product_attention (PyTorch 2.x; 1.13 has not).
bool sdpaAvailable();

/// The same through libtorch's at::scaled_dot_product_attention, which picks its fused kernel
/// for the inputs (on CUDA the memory-efficient one for an additive bias; no (B, H, S, K) scores
/// are kept for backward) and shares key/value heads itself (enable_gqa). The bias goes in as
/// the additive mask it is. Throws where !sdpaAvailable().
at::Tensor attentionSdpa(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                         const at::Tensor& bias, double scale);

/// The same composed from libtorch ops (matmul, softmax, matmul): the fused kernel's reference
/// and the path of other devices and dtypes.
at::Tensor attentionComposed(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                             const at::Tensor& bias, double scale);

/// Appends the new keys/values (B, G, S, D) of layer `layer` to the cache (when given) and
/// returns the keys/values to attend to: a concatenation, or after KvCache::reserve a view of
/// the storage the new ones were written into.
void appendToCache(KvCache* cache, size_t layer, at::Tensor& k, at::Tensor& v);

}  // namespace ptune::models
