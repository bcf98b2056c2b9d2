#include "loss/classification_loss.h"

#include <ATen/ATen.h>

#include "core/check.h"

namespace ptune::loss {
namespace {
void validate(const at::Tensor& logits, const at::Tensor& labels, const ClassLoss& loss) {
  PTUNE_CHECK(logits.dim() == 2 && labels.dim() == 1 && labels.size(0) == logits.size(0),
              "class loss: expected logits (B, K) and labels (B), got ", logits.sizes(), " and ", labels.sizes());
  const int64_t K = logits.size(1);
  PTUNE_CHECK(labels.numel() == 0 || (labels.min().item<int64_t>() >= 0 && labels.max().item<int64_t>() < K),
              "a class label lies outside [0, ", K, ")");
  PTUNE_CHECK(loss.gamma >= 0, "focal gamma must be >= 0, got ", loss.gamma);
  PTUNE_CHECK(loss.label_smoothing >= 0 && loss.label_smoothing < 1, "label smoothing must lie in [0, 1), got ",
              loss.label_smoothing);
  PTUNE_CHECK(!loss.alpha.defined() || (loss.alpha.dim() == 1 && loss.alpha.size(0) == K),
              "class weights (focal alpha) must give one value per class (", K, ")");
}
}  // namespace

at::Tensor classLossPerExample(const at::Tensor& logits, const at::Tensor& labels, const ClassLoss& loss) {
  validate(logits, labels, loss);
  const int64_t K = logits.size(1);
  const at::Tensor log_probs = at::log_softmax(logits, 1);                // (B, K)
  const at::Tensor target = log_probs.gather(1, labels.unsqueeze(1)).squeeze(1);  // (B) log p_y
  const at::Tensor alpha = loss.alpha.defined() ? loss.alpha.to(logits.scalar_type())
                                                : at::ones({K}, logits.options().requires_grad(false));
  const at::Tensor alpha_y = alpha.index_select(0, labels);               // (B)
  if (loss.kind == ClassLossKind::kFocal) {
    // (1 - p_y)^gamma; gamma = 0 gives 1 exactly (pow(0, 0) = 1), so FL = weighted cross-entropy.
    const at::Tensor modulator = loss.gamma == 0 ? at::ones_like(target) : at::pow(1 - target.exp(), loss.gamma);
    return -alpha_y * modulator * target;
  }
  const double eps = loss.label_smoothing;
  at::Tensor out = -(1 - eps) * alpha_y * target;
  if (eps > 0) out = out - eps / static_cast<double>(K) * (log_probs * alpha.unsqueeze(0)).sum(1);
  return out;
}

at::Tensor classLossMean(const at::Tensor& logits, const at::Tensor& labels, const ClassLoss& loss) {
  const at::Tensor per_example = classLossPerExample(logits, labels, loss);
  if (!loss.alpha.defined()) return per_example.mean();
  return per_example.sum() / loss.alpha.to(logits.scalar_type()).index_select(0, labels).sum();
}

}  // namespace ptune::loss
