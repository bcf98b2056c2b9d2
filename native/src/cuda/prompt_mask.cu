// Key mask and positions of a prompted batch (see prompt_mask.h): one block per row, a block-wide
// inclusive scan of the real-position flags in chunks of kThreads, carried from chunk to chunk.
#include "cuda/prompt_mask.h"

namespace ptune::cuda {
namespace {

constexpr int kThreads = 256;  // a power of two (the scan doubles its stride up to it)

// mask (B, T), key_mask (B, S), positions (B, S), S = P + T; block b writes row b.
__global__ void promptMaskKernel(const int64_t* __restrict__ mask, int64_t T, int64_t P,
                                 bool* __restrict__ key_mask, int64_t* __restrict__ positions) {
  __shared__ int64_t scan[kThreads];
  const int64_t S = P + T;
  const int64_t row = blockIdx.x;
  const int64_t* mask_row = mask + row * T;
  bool* key_row = key_mask + row * S;
  int64_t* pos_row = positions + row * S;
  int64_t carry = 0;  // real positions in the chunks before this one
  for (int64_t base = 0; base < S; base += kThreads) {
    const int64_t s = base + threadIdx.x;
    const bool real = s < S && (s < P || mask_row[s - P] != 0);
    scan[threadIdx.x] = real ? 1 : 0;
    __syncthreads();
    // Hillis-Steele inclusive scan over the chunk.
    for (int stride = 1; stride < kThreads; stride *= 2) {
      const int64_t left = threadIdx.x >= stride ? scan[threadIdx.x - stride] : 0;
      __syncthreads();
      scan[threadIdx.x] += left;
      __syncthreads();
    }
    if (s < S) {
      key_row[s] = real;
      pos_row[s] = real ? carry + scan[threadIdx.x] - 1 : 1;
    }
    const int64_t chunk_count = scan[kThreads - 1];
    __syncthreads();  // every thread has read the chunk's scan before the next one overwrites it
    carry += chunk_count;
  }
}

}  // namespace

cudaError_t launchPromptMask(const int64_t* mask, int64_t B, int64_t T, int64_t P, bool* key_mask,
                             int64_t* positions, cudaStream_t stream) {
  if (B == 0 || P + T == 0) {
    return cudaSuccess;
  }
  promptMaskKernel<<<static_cast<unsigned int>(B), kThreads, 0, stream>>>(mask, T, P, key_mask,
                                                                           positions);
  return cudaGetLastError();
}

}  // namespace ptune::cuda
