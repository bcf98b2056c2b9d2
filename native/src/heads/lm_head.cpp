#include "heads/lm_head.h"

#include <ATen/ATen.h>

#include "models/blocks.h"

namespace ptune::heads {

LmHead LmHead::decoder(at::Tensor weight) {
  LmHead h;
  h.weight_ = std::move(weight);
  return h;
}

LmHead LmHead::mlm(at::Tensor dense, at::Tensor dense_bias, Activation activation, at::Tensor norm_weight,
                   at::Tensor norm_bias, double eps, at::Tensor weight, at::Tensor bias) {
  LmHead h;
  h.mlm_ = true;
  h.dense_ = std::move(dense);
  h.dense_bias_ = std::move(dense_bias);
  h.activation_ = activation;
  h.norm_weight_ = std::move(norm_weight);
  h.norm_bias_ = std::move(norm_bias);
  h.eps_ = eps;
  h.weight_ = std::move(weight);
  h.bias_ = std::move(bias);
  return h;
}

at::Tensor LmHead::transform(const at::Tensor& hidden) const {
  if (!mlm_) return hidden;
  const at::Tensor x = models::activate(models::linear(hidden, dense_, dense_bias_), activation_);
  return models::layerNorm(x, norm_weight_, norm_bias_, eps_);
}

at::Tensor LmHead::logits(const at::Tensor& hidden) const {
  return models::linear(transform(hidden), weight_, bias_);
}

}  // namespace ptune::heads
