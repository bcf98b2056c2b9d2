// The fused CPU attention kernel's interface: raw pointers and sizes only (no ATen), so that
// kernel_avx2.cpp can be compiled with AVX2/FMA without AVX2 copies of ATen's inline functions
// leaking into the rest of the library. fused_attention.cpp owns tensors, threads and dispatch.
// Dimensions: B batch, H query heads, G key/value heads (H % G == 0), S queries, K keys,
// D head dim. A task is one (batch row, key/value head) pair: b = task / G, g = task % G.
#pragma once

#include <cstdint>

namespace ptune::models::attention_kernel {

template <typename T>
struct Args {
  const T* q;      // (B, H, S, D) contiguous
  const T* k;      // (B, G, K, D): rows of D contiguous, task (b, g) at (b * G + g) * kv_task
  const T* v;      // (B, G, K, D), laid out as k
  int64_t kv_task;  // elements between consecutive (b, g) in k and v (K * D when contiguous)
  const T* bias;   // additive, element (b, h, i, j) at b*bias_b + h*bias_h + i*bias_s + j
  int64_t bias_b, bias_h, bias_s;  // strides; 0 where the bias is broadcast
  int64_t B, H, G, S, K, D;
  T scale;               // applied to q.k before the bias is added
  int64_t causal_past;   // >= 0: query i sees no key after slot causal_past + i; -1: no such rule
  T* out;                // (B, H, S, D)
  T* lse;                // (B, H, S) log-sum-exp of each query's scores (kept for backward)
  // backward only
  const T* grad_out;  // (B, H, S, D)
  T* grad_q;          // (B, H, S, D)
  T* grad_k;          // (B, G, K, D)
  T* grad_v;          // (B, G, K, D)
};

/// Scratch values one thread needs for forward() / backward(): four (D, Kp) tables and two
/// (4, Kp) row blocks, Kp = K rounded up to 8, plus three (4, D) blocks.
inline int64_t scratchSize(int64_t K, int64_t D) {
  const int64_t Kp = (K + 7) / 8 * 8;
  return 4 * D * Kp + 2 * 4 * Kp + 3 * 4 * D;
}

/// Tasks [begin, end) of the forward pass (out, lse) and of the backward pass (grad_q, grad_k,
/// grad_v, each task writing only its own rows). scratch holds scratchSize(K, D) values.
/// The portable build:
void forwardBase(const Args<float>& a, int64_t begin, int64_t end, float* scratch);
void backwardBase(const Args<float>& a, int64_t begin, int64_t end, float* scratch);
void forwardBase(const Args<double>& a, int64_t begin, int64_t end, double* scratch);
void backwardBase(const Args<double>& a, int64_t begin, int64_t end, double* scratch);
/// The same compiled for AVX2 + FMA (call only where the CPU has both):
void forwardAvx2(const Args<float>& a, int64_t begin, int64_t end, float* scratch);
void backwardAvx2(const Args<float>& a, int64_t begin, int64_t end, float* scratch);

}  // namespace ptune::models::attention_kernel
