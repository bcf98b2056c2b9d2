// Heads over the final hidden states: a decoder's LM head (a bare (V, C) weight, often tied to
// the embedding table) and BERT's MLM head (transform dense -> activation -> LayerNorm, then the
// tied decoder and a bias). The fused loss (loss/linear_cross_entropy.h) consumes transform()'s
// output with weight() and bias(), so the (N, V) logits never exist whole in training.
#pragma once

#include <ATen/core/Tensor.h>

#include "ptune/ptune.h"

namespace ptune::heads {

class LmHead {
 public:
  /// logits = hidden @ weight^T; weight (V, C).
  static LmHead decoder(at::Tensor weight);
  /// logits = LayerNorm(act(hidden @ dense^T + dense_bias)) @ weight^T + bias (BertLMPredictionHead):
  /// dense (C, C), dense_bias / norm_weight / norm_bias (C), weight (V, C), bias (V).
  static LmHead mlm(at::Tensor dense, at::Tensor dense_bias, Activation activation, at::Tensor norm_weight,
                    at::Tensor norm_bias, double eps, at::Tensor weight, at::Tensor bias);

  /// hidden (..., C) -> the head's input to the vocabulary projection (..., C).
  at::Tensor transform(const at::Tensor& hidden) const;
  const at::Tensor& weight() const { return weight_; }  // (V, C)
  const at::Tensor& bias() const { return bias_; }      // (V), or undefined
  /// hidden (..., C) -> logits (..., V).
  at::Tensor logits(const at::Tensor& hidden) const;

 private:
  LmHead() = default;
  bool mlm_ = false;
  at::Tensor dense_, dense_bias_, norm_weight_, norm_bias_;
  Activation activation_ = Activation::kGeluExact;
  double eps_ = 0;
  at::Tensor weight_, bias_;
};

}  // namespace ptune::heads
