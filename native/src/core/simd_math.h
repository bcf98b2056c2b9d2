// Math for the hand-vectorised CPU kernels (models/attention, models/elementwise). Header-only,
// no library includes, internal linkage: each kernel build (portable, AVX2) keeps its own
// instructions, and no AVX2 copy of a function can become the one the linker keeps elsewhere.
#pragma once

#include <cstdint>

#define PTUNE_INLINE inline __attribute__((always_inline))

namespace ptune::simd_math {
namespace {

// exp for float, vectorisable (given -fno-trapping-math): Cody-Waite reduction by ln 2 and Cephes' degree-6 polynomial
// (about 1 ulp on [-87.3, 88.7]); below -87.3 it returns 0 (expf would return subnormals), above
// 88.7 it returns exp(88.7) ~ 3.3e38 (not inf), NaN stays NaN. The clamp sends NaN to lo (both
// comparisons false), so n is always a finite integer in [-126, 128]: converting NaN to int32_t,
// then shifting the negative result, would be undefined behaviour (UBSan's "left shift of
// negative value"), even though the NaN is returned.
PTUNE_INLINE float expOf(float x) {
  const float hi = 88.7f, lo = -87.3f;
  const float clamped = x > hi ? hi : (x >= lo ? x : lo);
  // n = round(clamped / ln 2): adding and removing 1.5 * 2^23 rounds to an integer, branch-free
  const float n = (clamped * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = clamped - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  __builtin_memcpy(&scale, &bits, sizeof scale);
  const float result = x < lo ? 0.0f : y * scale;
  return x != x ? x : result;
}
PTUNE_INLINE double expOf(double x) { return __builtin_exp(x); }
PTUNE_INLINE float logOf(float x) { return __builtin_logf(x); }
PTUNE_INLINE double logOf(double x) { return __builtin_log(x); }
PTUNE_INLINE float sqrtOf(float x) { return __builtin_sqrtf(x); }
PTUNE_INLINE double sqrtOf(double x) { return __builtin_sqrt(x); }

}  // namespace
}  // namespace ptune::simd_math
