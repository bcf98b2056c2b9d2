// Optimizer pieces of a training step: fused AdamW (torch.optim.AdamW semantics), global-norm
// gradient clipping (torch.nn.utils.clip_grad_norm_) and the learning-rate schedules of
// transformers' get_{constant,linear,cosine}_schedule_with_warmup.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

#include "ptune/ptune.h"

namespace ptune::optim {

struct AdamWHyper {
  double lr;
  double beta1;
  double beta2;
  double eps;
  double weight_decay;
};

/// One AdamW update in a single pass over memory; step counts from 1.
/// param, grad, exp_avg, exp_avg_sq are contiguous tensors of one shape, fp32 or fp64.
void adamwStep(at::Tensor& param, const at::Tensor& grad, at::Tensor& exp_avg,
               at::Tensor& exp_avg_sq, int64_t step, const AdamWHyper& hyper);

/// One parameter's part of an optimizer step: tensors as for adamwStep, its step (from 1) and rate.
struct AdamWSlot {
  at::Tensor param, grad, exp_avg, exp_avg_sq;
  int64_t step;
  double lr;
};

/// How adamwStepAll updates: kAuto is the single-pass kernel per tensor on CPU and the
/// multi-tensor one elsewhere where the build has it; the others force a choice (tests).
enum class AdamWImpl { kAuto, kPerTensor, kMultiTensor };

/// Whether this build's libtorch has the multi-tensor fused AdamW (at::_fused_adamw_, PyTorch
/// 2.x; on CPU from 2.4). Not in libtorch 1.13.
bool multiTensorAdamwAvailable();

/// One AdamW update of every slot, hyper.lr ignored (each slot's lr is used). kMultiTensor:
/// libtorch's fused multi-tensor AdamW (torch.optim.AdamW(fused=True)), one call per distinct
/// learning rate, so a CUDA step launches a kernel per group instead of ~6 per tensor; the steps
/// travel as tensors, so nothing waits for the device. Throws where !multiTensorAdamwAvailable().
void adamwStepAll(const std::vector<AdamWSlot>& slots, const AdamWHyper& hyper, AdamWImpl impl = AdamWImpl::kAuto);

/// Scales grads in place so their global 2-norm is at most max_norm (no-op when max_norm <= 0).
/// Returns the norm before clipping. CPU tensors: norms summed in double. Other devices: as
/// torch.nn.utils.clip_grad_norm_, per-tensor norms and the clipping factor stay on the device
/// and the caller's one host synchronisation is reading the returned norm.
double clipGradNorm(const std::vector<at::Tensor>& grads, double max_norm);

/// The device path of clipGradNorm on any tensors (tests run it on CPU ones).
double clipGradNormOnDevice(const std::vector<at::Tensor>& grads, double max_norm);

/// Multiplier of the base rate at optimizer step `step` (0-based, the rate that step uses).
double scheduleFactor(LrSchedule kind, int64_t step, int64_t warmup_steps, int64_t total_steps);

}  // namespace ptune::optim
