#include "cuda/prompt_mask_ops.h"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "core/check.h"
#include "cuda/prompt_mask.h"

namespace ptune::cuda {

PromptMask promptMask(const at::Tensor& mask, int64_t P) {
  PTUNE_CHECK(mask.dim() == 2, "promptMask: mask must be (B, T), got ", mask.dim(), " dimensions");
  PTUNE_CHECK(mask.is_cuda(), "promptMask: mask must be on a CUDA device, got ", mask.device());
  PTUNE_CHECK(mask.scalar_type() == at::kLong, "promptMask: mask must be int64, got ",
              mask.scalar_type());
  PTUNE_CHECK(P >= 0, "promptMask: the number of virtual tokens must be >= 0, got ", P);
  const c10::cuda::CUDAGuard device_guard(mask.device());
  const at::Tensor in = mask.contiguous();
  const int64_t B = in.size(0), T = in.size(1);
  PTUNE_CHECK(B <= 0x7fffffff, "promptMask: at most 2^31 - 1 rows, got ", B);
  PromptMask out{at::empty({B, P + T}, in.options().dtype(at::kBool)),
                 at::empty({B, P + T}, in.options().dtype(at::kLong))};
  const cudaError_t status =
      launchPromptMask(in.data_ptr<int64_t>(), B, T, P, out.key_mask.data_ptr<bool>(),
                       out.positions.data_ptr<int64_t>(), at::cuda::getCurrentCUDAStream());
  PTUNE_CHECK(status == cudaSuccess, "promptMask: CUDA kernel launch failed: ",
              cudaGetErrorString(status));
  return out;
}

}  // namespace ptune::cuda
