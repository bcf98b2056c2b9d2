// at::Tensor front of the prompt-mask kernel (prompt_mask.h); built only with PTUNE_WITH_CUDA.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace ptune::cuda {

struct PromptMask {
  at::Tensor key_mask;   // (B, P+T) bool
  at::Tensor positions;  // (B, P+T) int64
};

/// mask (B, T) int64 on a CUDA device; P >= 0 virtual tokens before the text. Runs on the
/// device's current stream; the result equals prompt::positionsFromMask of [1 x P, mask != 0].
PromptMask promptMask(const at::Tensor& mask, int64_t P);

}  // namespace ptune::cuda
