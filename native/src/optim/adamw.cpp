#include "optim/adamw.h"

#include <ATen/ATen.h>
#include <torch/version.h>

#include <cmath>
#include <map>

#include "core/check.h"

namespace ptune::optim {
namespace {

template <typename T>
void adamwKernel(T* param, const T* grad, T* m, T* v, int64_t n, int64_t step,
                 const AdamWHyper& h) {
  const T decay = static_cast<T>(1.0 - h.lr * h.weight_decay);
  const T b2 = static_cast<T>(h.beta2);
  const T bias1 = static_cast<T>(1.0 - std::pow(h.beta1, static_cast<double>(step)));
  const T bias2_sqrt = static_cast<T>(std::sqrt(1.0 - std::pow(h.beta2, static_cast<double>(step))));
  const T step_size = static_cast<T>(h.lr) / bias1;
  const T eps = static_cast<T>(h.eps);
  for (int64_t i = 0; i < n; ++i) {
    const T g = grad[i];
    param[i] *= decay;
    m[i] += (g - m[i]) * static_cast<T>(1.0 - h.beta1);  // lerp, weight in double as torch
    v[i] = v[i] * b2 + static_cast<T>(1.0 - h.beta2) * g * g;  // 1 - beta2 in double, as torch
    const T denom = std::sqrt(v[i]) / bias2_sqrt + eps;
    param[i] -= step_size * m[i] / denom;
  }
}

}  // namespace

void adamwStep(at::Tensor& param, const at::Tensor& grad, at::Tensor& exp_avg,
               at::Tensor& exp_avg_sq, int64_t step, const AdamWHyper& hyper) {
  PTUNE_CHECK(step >= 1, "AdamW: step counts from 1");
  PTUNE_CHECK(param.is_contiguous() && grad.is_contiguous() && exp_avg.is_contiguous() &&
                  exp_avg_sq.is_contiguous() && param.numel() == grad.numel() &&
                  param.numel() == exp_avg.numel() && param.numel() == exp_avg_sq.numel(),
              "AdamW: parameter, gradient and moments must be contiguous and of one size");
  PTUNE_CHECK(param.scalar_type() == at::kFloat || param.scalar_type() == at::kDouble,
              "AdamW: parameters must be fp32 or fp64 (master weights)");
  if (!param.device().is_cpu()) {
    // Other devices: the same update composed from libtorch ops (torch.optim.AdamW's single-tensor path).
    const double bias1 = 1.0 - std::pow(hyper.beta1, static_cast<double>(step));
    const double bias2_sqrt = std::sqrt(1.0 - std::pow(hyper.beta2, static_cast<double>(step)));
    param.mul_(1.0 - hyper.lr * hyper.weight_decay);
    exp_avg.lerp_(grad, 1.0 - hyper.beta1);
    exp_avg_sq.mul_(hyper.beta2).addcmul_(grad, grad, 1.0 - hyper.beta2);
    const at::Tensor denom = (exp_avg_sq.sqrt() / bias2_sqrt).add_(hyper.eps);
    param.addcdiv_(exp_avg, denom, -hyper.lr / bias1);
    return;
  }
  const int64_t n = param.numel();
  if (param.scalar_type() == at::kFloat) {
    adamwKernel(param.data_ptr<float>(), grad.data_ptr<float>(), exp_avg.data_ptr<float>(),
                exp_avg_sq.data_ptr<float>(), n, step, hyper);
  } else if (param.scalar_type() == at::kDouble) {
    adamwKernel(param.data_ptr<double>(), grad.data_ptr<double>(), exp_avg.data_ptr<double>(),
                exp_avg_sq.data_ptr<double>(), n, step, hyper);
  } else {
    throw Error("AdamW: parameters must be fp32 or fp64 (master weights)");
  }
}

bool multiTensorAdamwAvailable() {
#if TORCH_VERSION_MAJOR >= 2
  return true;
#else
  return false;
#endif
}

void adamwStepAll(const std::vector<AdamWSlot>& slots, const AdamWHyper& hyper, AdamWImpl impl) {
  if (slots.empty()) return;
  const bool multi = impl == AdamWImpl::kMultiTensor ||
                     (impl == AdamWImpl::kAuto && !slots[0].param.device().is_cpu() && multiTensorAdamwAvailable());
  if (!multi) {
    for (const AdamWSlot& s : slots) {
      at::Tensor param = s.param;
      at::Tensor exp_avg = s.exp_avg, exp_avg_sq = s.exp_avg_sq;
      adamwStep(param, s.grad, exp_avg, exp_avg_sq, s.step, {s.lr, hyper.beta1, hyper.beta2, hyper.eps, hyper.weight_decay});
    }
    return;
  }
  PTUNE_CHECK(multiTensorAdamwAvailable(),
              "AdamW: the multi-tensor fused update needs a PyTorch 2.x build (this libtorch is ", TORCH_VERSION, ")");
#if TORCH_VERSION_MAJOR >= 2
  // Group by learning rate: _fused_adamw_ takes one rate per call.
  std::map<double, std::vector<size_t>> groups;
  for (size_t i = 0; i < slots.size(); ++i) {
    const AdamWSlot& s = slots[i];
    PTUNE_CHECK(s.step >= 1, "AdamW: step counts from 1");
    PTUNE_CHECK(s.param.scalar_type() == at::kFloat || s.param.scalar_type() == at::kDouble,
                "AdamW: parameters must be fp32 or fp64 (master weights)");
    groups[s.lr].push_back(i);
  }
  for (const auto& [lr, members] : groups) {
    std::vector<at::Tensor> params, grads, exp_avgs, exp_avg_sqs, steps;
    for (const size_t i : members) {
      const AdamWSlot& s = slots[i];
      params.push_back(s.param);
      grads.push_back(s.grad);
      exp_avgs.push_back(s.exp_avg);
      exp_avg_sqs.push_back(s.exp_avg_sq);
      // The step after the update, as torch.optim.AdamW increments state['step'] first; a fill on
      // the device (no copy from the host to wait for).
      steps.push_back(at::full({}, static_cast<double>(s.step), s.param.options().dtype(at::kFloat)));
    }
    at::_fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, /*max_exp_avg_sqs=*/{}, steps, lr, hyper.beta1,
                      hyper.beta2, hyper.weight_decay, hyper.eps, /*amsgrad=*/false, /*maximize=*/false);
  }
#endif
}

double clipGradNormOnDevice(const std::vector<at::Tensor>& grads, double max_norm) {
  if (grads.empty()) return 0.0;
  std::vector<at::Tensor> norms;
  for (const auto& g : grads) norms.push_back(at::norm(g));
  const at::Tensor total = at::stack(norms).norm();
  if (max_norm > 0) {
    const at::Tensor coef = (max_norm / (total + 1e-6)).clamp_max(1.0);
    for (const auto& g : grads) g.mul_(coef);  // a no-op factor of 1 below max_norm, as torch
  }
  return total.item<double>();  // the one synchronisation
}

double clipGradNorm(const std::vector<at::Tensor>& grads, double max_norm) {
  if (!grads.empty() && !grads[0].device().is_cpu()) return clipGradNormOnDevice(grads, max_norm);
  double sum_sq = 0.0;
  for (const auto& g : grads) sum_sq += g.to(at::kDouble).pow(2).sum().item<double>();
  const double total = std::sqrt(sum_sq);
  if (max_norm > 0) {
    const double coef = std::min(1.0, max_norm / (total + 1e-6));
    if (coef < 1.0) {
      for (const auto& g : grads) g.mul_(coef);  // tensors share storage: this scales the grads
    }
  }
  return total;
}

double scheduleFactor(LrSchedule kind, int64_t step, int64_t warmup_steps, int64_t total_steps) {
  if (step < warmup_steps) {
    return static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup_steps));
  }
  const double progress = static_cast<double>(step - warmup_steps) /
                          static_cast<double>(std::max<int64_t>(1, total_steps - warmup_steps));
  switch (kind) {
    case LrSchedule::kConstant:
      return 1.0;
    case LrSchedule::kLinear:
      return std::max(0.0, static_cast<double>(total_steps - step) /
                               static_cast<double>(std::max<int64_t>(1, total_steps - warmup_steps)));
    case LrSchedule::kCosine:
      return std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * progress)));
  }
  throw Error("unknown learning-rate schedule");
}

}  // namespace ptune::optim
