// RMSNorm, rotary embedding and the SiLU-gated product as CPU kernels with their own backward
// (kernel_impl.h). Composed from libtorch ops these are ~60 small ops and autograd nodes per
// layer and step, a fifth of a small model's step (bench/PROFILE.md); fused, each is one pass
// over memory forward and one backward, and autograd keeps fewer tensors.
// The backward passes are exact (not recomputed approximations); models/blocks.cpp uses these
// where applies() and the composed ops elsewhere.
#pragma once

#include <ATen/core/Tensor.h>

#include "core/cpu_features.h"

namespace ptune::models::elementwise {

/// Whether the kernels handle x: a CPU tensor, fp32 or fp64.
bool applies(const at::Tensor& x);

/// x (..., C), weight (C) of x's dtype: weight * (x * rsqrt(mean(x^2) + eps)), transformers'
/// LlamaRMSNorm for fp32/fp64. Differentiable in x and weight.
at::Tensor rmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps,
                   KernelVariant variant = defaultKernelVariant());

/// x (B, S, N, D) (the projection's layout; D even, last dim contiguous), cos and sin
/// (B or 1, 1, S, D) as Rotary::tables makes them -> (B, N, S, D) contiguous:
/// x * cos + rotate_half(x) * sin with the heads moved before the positions. Differentiable in x.
at::Tensor rotaryHeads(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                       KernelVariant variant = defaultKernelVariant());

/// silu(gate) * up for gate and up of one shape and dtype. Differentiable in both.
at::Tensor siluMul(const at::Tensor& gate, const at::Tensor& up, KernelVariant variant = defaultKernelVariant());

}  // namespace ptune::models::elementwise
