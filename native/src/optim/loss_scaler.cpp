#include "optim/loss_scaler.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <limits>

#include "core/check.h"

namespace ptune::optim {

DynamicLossScaler::DynamicLossScaler(double initial_scale, int64_t growth_interval, double growth_factor,
                                     double backoff_factor)
    : scale_(initial_scale),
      growth_interval_(growth_interval),
      growth_factor_(growth_factor),
      backoff_factor_(backoff_factor) {
  PTUNE_CHECK(initial_scale > 0 && growth_interval >= 1 && growth_factor > 1 && backoff_factor > 0 &&
                  backoff_factor < 1,
              "loss scaler: needs scale > 0, growth interval >= 1, growth factor > 1 and backoff in (0, 1)");
}

at::Tensor DynamicLossScaler::scaled(const at::Tensor& loss) const { return loss * scale_; }

bool DynamicLossScaler::unscale(const std::vector<at::Tensor>& grads) const {
  bool finite = true;
  for (const auto& g : grads) {
    finite = finite && at::isfinite(g).all().item<bool>();
  }
  const double inverse = 1.0 / scale_;
  for (const auto& g : grads) g.mul_(inverse);  // tensors share storage: this unscales the grads
  return finite;
}

void DynamicLossScaler::update(bool found_inf) {
  if (found_inf) {
    scale_ = std::max(scale_ * backoff_factor_, std::numeric_limits<double>::min());
    clean_steps_ = 0;
    return;
  }
  clean_steps_ += 1;
  if (clean_steps_ >= growth_interval_) {
    scale_ = std::min(scale_ * growth_factor_, std::numeric_limits<double>::max());
    clean_steps_ = 0;
  }
}

}  // namespace ptune::optim
