// Dynamic loss scaling for fp16 training (torch.cuda.amp.GradScaler's rule): the loss is
// multiplied by `scale` before backward so that small fp16 activation gradients do not flush to
// zero; the fp32 gradients are divided by it before clipping and AdamW. A step whose gradients
// hold an inf or NaN is skipped and the scale halved; after `growth_interval` clean steps in a
// row it doubles. bf16 and fp32 have fp32's exponent range and need none.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace ptune::optim {

class DynamicLossScaler {
 public:
  explicit DynamicLossScaler(double initial_scale = 65536.0, int64_t growth_interval = 2000,
                             double growth_factor = 2.0, double backoff_factor = 0.5);

  double scale() const { return scale_; }
  /// Clean steps since the last change of the scale.
  int64_t cleanSteps() const { return clean_steps_; }

  /// loss * scale (a scalar tensor), to call backward on.
  at::Tensor scaled(const at::Tensor& loss) const;

  /// Divides every gradient by the scale in place; returns whether all of them are finite (the
  /// check runs on the scaled gradients, so an overflow is seen before it is divided away).
  bool unscale(const std::vector<at::Tensor>& grads) const;

  /// After a cycle: found_inf halves the scale (the caller skips the step), else counts a clean
  /// step and doubles the scale every growth_interval of them. Never below the smallest normal
  /// double: a scale that keeps halving means the loss itself is not finite.
  void update(bool found_inf);

 private:
  double scale_;
  int64_t growth_interval_;
  double growth_factor_;
  double backoff_factor_;
  int64_t clean_steps_ = 0;
};

}  // namespace ptune::optim
