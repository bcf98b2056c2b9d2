// The key mask and position ids of a prompted batch, on the GPU: raw pointers and a CUDA stream,
// no ATen (this header is included by prompt_mask.cu, which nvcc compiles as C++17).
// The same result as prompt/prompted_input.cpp composes from libtorch ops for P input-level
// virtual tokens before a padded text batch:
//   key_mask  = [1 x P, mask != 0]                              (B, P+T)
//   positions = cumsum(key_mask) - 1 on real positions, 1 on padding   (B, P+T)
// so virtual tokens take 0..P-1 and the text continues from P whether it is left- or right-padded.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace ptune::cuda {

/// mask is (B, T) int64 (nonzero = real token), key_mask (B, P+T) bool (one byte each),
/// positions (B, P+T) int64; all contiguous, on the device of `stream`. Launches one block per
/// row and returns the launch status (cudaSuccess when B == 0 or P + T == 0: nothing to do).
cudaError_t launchPromptMask(const int64_t* mask, int64_t B, int64_t T, int64_t P, bool* key_mask,
                             int64_t* positions, cudaStream_t stream);

}  // namespace ptune::cuda
