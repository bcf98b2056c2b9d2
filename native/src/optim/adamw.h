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

/// Scales grads in place so their global 2-norm is at most max_norm (no-op when max_norm <= 0).
/// Returns the norm before clipping.
double clipGradNorm(const std::vector<at::Tensor>& grads, double max_norm);

/// Multiplier of the base rate at optimizer step `step` (0-based, the rate that step uses).
double scheduleFactor(LrSchedule kind, int64_t step, int64_t warmup_steps, int64_t total_steps);

}  // namespace ptune::optim
