// Scaled dot-product attention as one CPU kernel with its own backward (kernel_impl.h): the
// (B, H, S, K) scores and probabilities never exist as tensors, which is most of a small
// model's step when composed from libtorch ops (bench/PROFILE.md).
#pragma once

#include <ATen/core/Tensor.h>

#include "core/cpu_features.h"

namespace ptune::models::attention_kernel {

/// Which build of the kernel runs (core/cpu_features.h).
using Variant = KernelVariant;
inline Variant defaultVariant() { return defaultKernelVariant(); }

/// Whether fused() handles these inputs: CPU tensors, fp32 or fp64, bias without gradient.
bool applies(const at::Tensor& q, const at::Tensor& bias);

/// q (B, H, S, D); k, v (B, G, K, D) with H % G == 0; bias (B or 1, H or 1, S or 1, K) additive
/// (its lowest value hides a key); scale multiplies q.k before the bias. causal: the bias hides
/// every key after slot K - S + i from query i (the kernel then skips them). Returns (B, H, S, D),
/// differentiable in q, k and v.
at::Tensor fused(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias,
                 double scale, bool causal, Variant variant = defaultVariant());

}  // namespace ptune::models::attention_kernel
