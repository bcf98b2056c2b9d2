// The fused elementwise kernels' interface: raw pointers and sizes only (no ATen), so that
// kernel_avx2.cpp can be compiled with AVX2/FMA (as models/attention/kernel.h). fused.cpp owns
// tensors, threads, autograd and dispatch. Every function handles the rows or elements
// [begin, end) and writes only those, so threads split the work without sharing a write.
#pragma once

#include <cstdint>

namespace ptune::models::elementwise_kernel {

/// RMSNorm over rows of C: y = weight * (x * rstd), rstd = 1 / sqrt(mean(x^2) + eps).
template <typename T>
struct RmsNormArgs {
  const T* x;       // (rows, C) contiguous
  const T* weight;  // (C)
  int64_t C;
  T eps;
  T* y;             // forward: (rows, C)
  T* rstd;          // forward: written (rows); backward: read
  const T* grad_y;  // backward: (rows, C)
  T* grad_x;        // backward: (rows, C)
};

/// Rotary embedding (rotate_half convention) of N heads, fused with the move between the
/// projections' (B, S, N, D) layout and attention's (B, N, S, D): element (b, s, n, d) of the
/// input is at b*in_b + s*in_s + n*in_n + d, of the output at b*out_b + s*out_s + n*out_n + d.
/// cos/sin are (B or 1, S, D) contiguous, row (b, s) at b*cs_b + s*D.
/// Forward: y[d] = x[d] cos[d] - x[d+D/2] sin[d] (d < D/2), x[d] cos[d] + x[d-D/2] sin[d] (else).
/// Backward (the transpose): gx[d] = g[d] cos[d] + g[d+D/2] sin[d+D/2] (d < D/2),
/// g[d] cos[d] - g[d-D/2] sin[d-D/2] (else). Tasks are the B*S (b, s) rows.
template <typename T>
struct RotaryArgs {
  const T* in;
  T* out;
  const T* cos;
  const T* sin;
  int64_t B, S, N, D;
  int64_t in_b, in_s, in_n, out_b, out_s, out_n, cs_b;
};

/// SiLU-gated product out = silu(gate) * up = gate / (1 + exp(-gate)) * up, and its backward
/// grad_gate = grad * up * s (1 + gate (1 - s)), grad_up = grad * silu(gate), s = sigmoid(gate).
/// All arrays have the same contiguous length; [begin, end) are element indices.
template <typename T>
struct SiluMulArgs {
  const T* gate;
  const T* up;
  T* out;             // forward
  const T* grad_out;  // backward
  T* grad_gate;       // backward
  T* grad_up;         // backward
};

#define PTUNE_ELEMENTWISE_KERNELS(Suffix, T)                                               \
  void rmsNormForward##Suffix(const RmsNormArgs<T>& a, int64_t begin, int64_t end);        \
  void rmsNormBackward##Suffix(const RmsNormArgs<T>& a, int64_t begin, int64_t end);       \
  void rotaryForward##Suffix(const RotaryArgs<T>& a, int64_t begin, int64_t end);          \
  void rotaryBackward##Suffix(const RotaryArgs<T>& a, int64_t begin, int64_t end);         \
  void siluMulForward##Suffix(const SiluMulArgs<T>& a, int64_t begin, int64_t end);        \
  void siluMulBackward##Suffix(const SiluMulArgs<T>& a, int64_t begin, int64_t end);

/// The portable build (fp32, fp64):
PTUNE_ELEMENTWISE_KERNELS(Base, float)
PTUNE_ELEMENTWISE_KERNELS(Base, double)
/// The same compiled for AVX2 + FMA (call only where the CPU has both):
PTUNE_ELEMENTWISE_KERNELS(Avx2, float)

#undef PTUNE_ELEMENTWISE_KERNELS

}  // namespace ptune::models::elementwise_kernel
