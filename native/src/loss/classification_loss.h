// Losses over class logits (classification with a head or a verbalizer): cross-entropy with
// label smoothing and class weights (torch.nn.functional.cross_entropy's semantics), and focal
// loss for softmax classifiers (Lin et al. 2017): FL_i = -alpha_{y_i} (1 - p_{y_i})^gamma log p_{y_i}.
// Dimensions: B examples, K classes.
#pragma once

#include <ATen/core/Tensor.h>

namespace ptune::loss {

enum class ClassLossKind { kCrossEntropy = 0, kFocal = 1 };

struct ClassLoss {
  ClassLossKind kind = ClassLossKind::kCrossEntropy;
  double gamma = 0;            // focal: focusing parameter (>= 0; 0 gives cross-entropy)
  double label_smoothing = 0;  // cross-entropy: in [0, 1)
  at::Tensor alpha;            // (K) class weights, or undefined for 1
};

/// Per-example losses (B) of logits (B, K) (any float dtype) against labels (B) int64.
/// Cross-entropy with smoothing eps: (1 - eps) (-alpha_y log p_y) + eps / K sum_k (-alpha_k log p_k),
/// as torch computes it with weights; focal: -alpha_y (1 - p_y)^gamma log p_y.
at::Tensor classLossPerExample(const at::Tensor& logits, const at::Tensor& labels, const ClassLoss& loss);

/// The batch loss: per-example losses summed and divided by the sum of alpha_{y_i} (the number of
/// examples without weights), as torch's weighted cross-entropy normalises; with gamma = 0 the
/// focal loss is then exactly the weighted cross-entropy.
at::Tensor classLossMean(const at::Tensor& logits, const at::Tensor& labels, const ClassLoss& loss);

}  // namespace ptune::loss
