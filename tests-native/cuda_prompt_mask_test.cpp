// The CUDA prompt-mask kernel (native/src/cuda/) against the composed libtorch ops of
// prompt/prompted_input.cpp, on left- and right-padded batches, with and without virtual tokens,
// rows longer than one block's chunk. Built only with PTUNE_WITH_CUDA (toolchains/cuda.cmake);
// skipped where no GPU is visible.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/cuda.h>

#include <cstdint>
#include <vector>

#include "cuda/prompt_mask_ops.h"
#include "prompt/prompted_input.h"

namespace {

// The reference: [1 x P, mask != 0] and its positions, on the CPU.
void expectMatchesComposedOps(const at::Tensor& mask, int64_t P) {
  const at::Tensor key_mask =
      at::cat({at::ones({mask.size(0), P}, at::kBool), mask.ne(0)}, 1);  // (B, P+T)
  const at::Tensor positions = ptune::prompt::positionsFromMask(key_mask);    // (B, P+T)
  const ptune::cuda::PromptMask got = ptune::cuda::promptMask(mask.to(at::kCUDA), P);
  ASSERT_EQ(got.key_mask.scalar_type(), at::kBool);
  ASSERT_EQ(got.positions.scalar_type(), at::kLong);
  EXPECT_TRUE(at::equal(got.key_mask.cpu(), key_mask)) << "B=" << mask.size(0) << " T=" << mask.size(1) << " P=" << P;
  EXPECT_TRUE(at::equal(got.positions.cpu(), positions)) << "B=" << mask.size(0) << " T=" << mask.size(1) << " P=" << P;
}

// (B, T) int64: row b has lengths[b] real tokens, padding on the left or the right.
at::Tensor paddedMask(const std::vector<int64_t>& lengths, int64_t T, bool left) {
  at::Tensor mask = at::zeros({static_cast<int64_t>(lengths.size()), T}, at::kLong);
  for (size_t b = 0; b < lengths.size(); ++b) {
    const int64_t start = left ? T - lengths[b] : 0;
    mask[static_cast<int64_t>(b)].narrow(0, start, lengths[b]).fill_(1);
  }
  return mask;
}

TEST(CudaPromptMaskTest, MatchesComposedOpsOnPaddedBatches) {
  if (!torch::cuda::is_available()) {
    GTEST_SKIP() << "no CUDA device visible";
  }
  for (const bool left : {true, false}) {
    for (const int64_t P : {0, 1, 20}) {
      expectMatchesComposedOps(paddedMask({5, 1, 7, 0}, 7, left), P);
      // Rows longer than one chunk of 256 threads: the count carries across chunks.
      expectMatchesComposedOps(paddedMask({600, 255, 256, 257, 1}, 600, left), P);
    }
  }
}

TEST(CudaPromptMaskTest, HandlesEmptyBatchesAndHolesInTheMask) {
  if (!torch::cuda::is_available()) {
    GTEST_SKIP() << "no CUDA device visible";
  }
  expectMatchesComposedOps(at::zeros({0, 5}, at::kLong), 3);
  expectMatchesComposedOps(at::zeros({2, 0}, at::kLong), 4);
  expectMatchesComposedOps(at::zeros({2, 0}, at::kLong), 0);
  at::manual_seed(5);
  expectMatchesComposedOps(at::randint(0, 2, {3, 700}, at::kLong), 9);  // any 0/1 pattern
}

TEST(CudaPromptMaskTest, RefusesCpuAndWrongDtypeInputs) {
  if (!torch::cuda::is_available()) {
    GTEST_SKIP() << "no CUDA device visible";
  }
  EXPECT_THROW(ptune::cuda::promptMask(at::ones({2, 3}, at::kLong), 1), std::exception);
  EXPECT_THROW(ptune::cuda::promptMask(at::ones({2, 3}, at::kInt).to(at::kCUDA), 1), std::exception);
  EXPECT_THROW(ptune::cuda::promptMask(at::ones({2, 3}, at::kLong).to(at::kCUDA), -1), std::exception);
}

}  // namespace
