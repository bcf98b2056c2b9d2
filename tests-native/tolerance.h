// Tolerances that follow from the computation, so the suite holds on any CPU and BLAS kernel
// (toolchains/kernels.sh runs it under OpenBLAS's Haswell, Zen, SkylakeX and auto-detected
// kernels and ATen's default/AVX2/AVX-512 ones).
//
// Two evaluations of one quantity that round differently (another BLAS blocking or vector width,
// a row alone or inside a batch, the KV cache or a full recompute, a chunked or a whole loss)
// differ by a few units in the last place (ulps) of the quantity's magnitude per rounded
// reduction, accumulated over the computation's chain of reductions. So closeness is asserted
// relative to the magnitude of what is compared, in ulps of the precision it was computed in;
// bit equality only for the same shapes on the same machine (a resumed run, a copied tensor).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

namespace ptune_test {

constexpr double kEps32 = std::numeric_limits<float>::epsilon();   // 1.19e-7
constexpr double kEps64 = std::numeric_limits<double>::epsilon();  // 2.22e-16

/// Ulps of the magnitude allowed between two evaluations of one model output (logits, loss,
/// hidden states, gradients) that round differently. A forward of the stories260k model chains
/// ~40 rounded reductions (5 layers of norms, projections of length 64-172, attention, MLP, a
/// 512-way head); each contributes ~sqrt(n)/2 ulps of its output and the errors add across
/// layers, so a few dozen ulps is the expected size (measured at most ~10 across the kernels
/// above). 128 leaves room for other CPUs; a real bug (a wrong mask, position or term) is off by
/// 1e-3 of the magnitude or far more.
constexpr double kModelUlps = 128;

/// Ulps of the magnitude allowed for a short elementwise computation (an AdamW update, a
/// clipping scale, a mean of a few rows): a handful of rounded operations, ~1 ulp each.
constexpr double kElementwiseUlps = 8;

/// Allowed |a - b| for fp32 results of magnitude `scale` (see kModelUlps).
inline double fp32Tolerance(double scale, double ulps = kModelUlps) { return ulps * kEps32 * scale; }
/// Allowed |a - b| for fp64 results of magnitude `scale`.
inline double fp64Tolerance(double scale, double ulps = kModelUlps) { return ulps * kEps64 * scale; }

/// max |x| over the values (the magnitude a comparison is relative to).
template <typename T>
double maxAbs(const std::vector<T>& values) {
  double m = 0.0;
  for (const T& v : values) m = std::max(m, std::abs(static_cast<double>(v)));
  return m;
}

/// A central difference D(h) = (f(x+h) - f(x-h)) / 2h of a double-precision loss, with a bound on
/// |D(h) - f'(x)| from the step:
///   truncation  h^2 f'''/6 (+ O(h^4)), estimated from the same component at 2h:
///               D(2h) - D(h) = 3 h^2 f'''/6, so truncation ~ |D(2h) - D(h)| / 3;
///   rounding    each loss evaluation is within kLossUlps eps |f| of the exact value, so the
///               difference quotient is within kLossUlps eps |f| / h.
/// The bound is twice their sum (the truncation estimate is itself approximate). h = 1e-4
/// balances the two for losses of O(1) with third derivatives of O(1..100).
struct CentralDifference {
  double value = 0;      // D(h)
  double tolerance = 0;  // bound on |D(h) - f'(x)|
};

/// Rounding of one evaluation of a double loss through the stories260k model: the same few dozen
/// ulps as kModelUlps (measured ~2 ulps of |f|).
constexpr double kLossUlps = kModelUlps;
constexpr double kFiniteDifferenceStep = 1e-4;

/// loss_at(d) evaluates the loss with the checked component displaced by d (and restores it).
inline CentralDifference centralDifference(const std::function<double(double)>& loss_at,
                                           double h = kFiniteDifferenceStep) {
  const double p1 = loss_at(h), m1 = loss_at(-h), p2 = loss_at(2 * h), m2 = loss_at(-2 * h);
  const double d1 = (p1 - m1) / (2 * h), d2 = (p2 - m2) / (4 * h);
  const double magnitude = std::max({std::abs(p1), std::abs(m1), std::abs(p2), std::abs(m2)});
  const double rounding = kLossUlps * kEps64 * magnitude / h;
  const double truncation = std::abs(d2 - d1) / 3;
  return {d1, 2 * (rounding + truncation)};
}

/// Greedy decoding compared across code paths: `actual` must equal `expected` token for token,
/// except that at the first difference the two tokens may be a near-tie of the logits the
/// reference path had at that step (`logits_at(prefix_length)`: the next-token logits after the
/// input and expected[0..prefix_length)); after a legitimate tie the continuations may diverge,
/// so the comparison stops there. Returns an empty string when they agree, else what differs.
inline std::string greedyMismatch(const std::vector<int64_t>& expected, const std::vector<int64_t>& actual,
                                  const std::function<std::vector<float>(size_t)>& logits_at) {
  const size_t n = std::min(expected.size(), actual.size());
  for (size_t i = 0; i < n; ++i) {
    if (expected[i] == actual[i]) continue;
    const std::vector<float> logits = logits_at(i);
    const double gap = std::abs(static_cast<double>(logits.at(static_cast<size_t>(expected[i]))) -
                                logits.at(static_cast<size_t>(actual[i])));
    const double tolerance = fp32Tolerance(maxAbs(logits));
    if (gap <= tolerance) return "";  // a tie within rounding: either token is the argmax
    return "token " + std::to_string(i) + ": " + std::to_string(actual[i]) + " instead of " +
           std::to_string(expected[i]) + " (their logits differ by " + std::to_string(gap) +
           ", more than the rounding tolerance " + std::to_string(tolerance) + ")";
  }
  if (expected.size() != actual.size()) {
    return "lengths differ: " + std::to_string(actual.size()) + " instead of " + std::to_string(expected.size());
  }
  return "";
}

}  // namespace ptune_test
