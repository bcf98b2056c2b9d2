// Autograd against central finite differences, component by component, in double precision:
// the one loop every gradient test of the suite runs (methods, families, the loss).
#pragma once

#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <string>

#include "tolerance.h"

namespace ptune_test {

struct GradientReport {
  double worst_ratio = 0;     // max |autograd - D(h)| / its bound (must stay <= 1)
  double worst_relative = 0;  // over components with |gradient| >= 1e-3, for the log
  int components = 0;
  int large = 0;  // components with |gradient| >= 1e-3
};

/// Checks `grad` (autograd's gradient of loss() w.r.t. the contiguous fp64 `tensor`) against
/// central differences at `count` components drawn by rng; each must lie within the bound that
/// follows from the step (centralDifference). loss() is evaluated with one component moved.
inline void checkComponents(const std::string& name, at::Tensor& tensor, const at::Tensor& grad, int count,
                            std::mt19937& rng, const std::function<double()>& loss, GradientReport& report) {
  double* data = tensor.data_ptr<double>();
  const at::Tensor g_contiguous = grad.contiguous();
  const double* g = g_contiguous.data_ptr<double>();
  std::uniform_int_distribution<int64_t> pick(0, tensor.numel() - 1);
  for (int i = 0; i < std::min<int64_t>(count, tensor.numel()); ++i) {
    const int64_t k = pick(rng);
    const double original = data[k];
    const CentralDifference fd = centralDifference([&](double d) {
      data[k] = original + d;
      const double value = loss();
      data[k] = original;
      return value;
    });
    const double ad = g[k], err = std::abs(fd.value - ad);
    report.components += 1;
    report.worst_ratio = std::max(report.worst_ratio, err / fd.tolerance);
    if (std::max(std::abs(fd.value), std::abs(ad)) >= 1e-3) {
      report.worst_relative = std::max(report.worst_relative, err / std::max(std::abs(fd.value), std::abs(ad)));
      report.large += 1;
    }
    // The bound follows from the step: truncation ~h^2 and rounding ~eps |f| / h (tolerance.h).
    EXPECT_LE(err, fd.tolerance) << name << "[" << k << "]: autograd " << ad << ", central difference " << fd.value
                                 << " (allowed error " << fd.tolerance << ")";
  }
}

}  // namespace ptune_test
