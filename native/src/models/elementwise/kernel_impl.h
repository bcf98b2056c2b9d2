// The fused elementwise kernels' bodies, included by kernel_base.cpp and kernel_avx2.cpp, each
// defining PTUNE_ELEMENTWISE_SUFFIX. Everything here has internal linkage and uses no library
// inline functions, so each build keeps its own instructions. The inner loops run over
// contiguous values and vectorise (`omp simd`, -fopenmp-simd).
#include <cstdint>

#include "core/simd_math.h"
#include "models/elementwise/kernel.h"

namespace ptune::models::elementwise_kernel {
namespace {

using simd_math::expOf;
using simd_math::sqrtOf;

template <typename T>
PTUNE_INLINE void rmsNormForwardRows(const RmsNormArgs<T>& a, int64_t begin, int64_t end) {
  const int64_t C = a.C;
  const T* __restrict w = a.weight;
  for (int64_t r = begin; r < end; ++r) {
    const T* __restrict x = a.x + r * C;
    T* __restrict y = a.y + r * C;
    T squares = 0;
#pragma omp simd reduction(+ : squares)
    for (int64_t c = 0; c < C; ++c) squares += x[c] * x[c];
    const T rstd = T(1) / sqrtOf(squares / static_cast<T>(C) + a.eps);
    a.rstd[r] = rstd;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) y[c] = w[c] * (x[c] * rstd);
  }
}

// d/dx of y = w * x * rstd: rstd * w * g - x * rstd^3 * (sum_c w g x) / C.
template <typename T>
PTUNE_INLINE void rmsNormBackwardRows(const RmsNormArgs<T>& a, int64_t begin, int64_t end) {
  const int64_t C = a.C;
  const T* __restrict w = a.weight;
  for (int64_t r = begin; r < end; ++r) {
    const T* __restrict x = a.x + r * C;
    const T* __restrict g = a.grad_y + r * C;
    T* __restrict gx = a.grad_x + r * C;
    T dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int64_t c = 0; c < C; ++c) dot += w[c] * g[c] * x[c];
    const T rstd = a.rstd[r];
    const T k = rstd * rstd * rstd * dot / static_cast<T>(C);
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) gx[c] = rstd * (w[c] * g[c]) - k * x[c];
  }
}

template <typename T, bool kBackward>
PTUNE_INLINE void rotaryRows(const RotaryArgs<T>& a, int64_t begin, int64_t end) {
  const int64_t h = a.D / 2;
  for (int64_t task = begin; task < end; ++task) {
    const int64_t b = task / a.S, s = task % a.S;
    const T* __restrict c = a.cos + b * a.cs_b + s * a.D;
    const T* __restrict sn = a.sin + b * a.cs_b + s * a.D;
    for (int64_t n = 0; n < a.N; ++n) {
      const T* __restrict x = a.in + b * a.in_b + s * a.in_s + n * a.in_n;
      T* __restrict y = a.out + b * a.out_b + s * a.out_s + n * a.out_n;
      if constexpr (!kBackward) {
#pragma omp simd
        for (int64_t d = 0; d < h; ++d) {
          y[d] = x[d] * c[d] - x[d + h] * sn[d];
          y[d + h] = x[d + h] * c[d + h] + x[d] * sn[d + h];
        }
      } else {
#pragma omp simd
        for (int64_t d = 0; d < h; ++d) {
          y[d] = x[d] * c[d] + x[d + h] * sn[d + h];
          y[d + h] = x[d + h] * c[d + h] - x[d] * sn[d];
        }
      }
    }
  }
}

template <typename T>
PTUNE_INLINE void siluMulForwardRange(const SiluMulArgs<T>& a, int64_t begin, int64_t end) {
  const T* __restrict gate = a.gate;
  const T* __restrict up = a.up;
  T* __restrict out = a.out;
#pragma omp simd
  for (int64_t i = begin; i < end; ++i) {
    const T g = gate[i];
    out[i] = g / (T(1) + expOf(-g)) * up[i];  // libtorch's silu: x / (1 + exp(-x))
  }
}

template <typename T>
PTUNE_INLINE void siluMulBackwardRange(const SiluMulArgs<T>& a, int64_t begin, int64_t end) {
  const T* __restrict gate = a.gate;
  const T* __restrict up = a.up;
  const T* __restrict grad = a.grad_out;
  T* __restrict grad_gate = a.grad_gate;
  T* __restrict grad_up = a.grad_up;
#pragma omp simd
  for (int64_t i = begin; i < end; ++i) {
    const T g = gate[i];
    const T s = T(1) / (T(1) + expOf(-g));
    grad_up[i] = grad[i] * (g * s);
    grad_gate[i] = grad[i] * up[i] * (s * (T(1) + g * (T(1) - s)));  // libtorch's silu_backward
  }
}

}  // namespace
}  // namespace ptune::models::elementwise_kernel

#define PTUNE_CONCAT_(a, b) a##b
#define PTUNE_CONCAT(a, b) PTUNE_CONCAT_(a, b)
#define PTUNE_DEFINE_ELEMENTWISE_KERNELS(T)                                                                    \
  namespace ptune::models::elementwise_kernel {                                                                \
  void PTUNE_CONCAT(rmsNormForward, PTUNE_ELEMENTWISE_SUFFIX)(const RmsNormArgs<T>& a, int64_t b, int64_t e) {  \
    rmsNormForwardRows(a, b, e);                                                                               \
  }                                                                                                            \
  void PTUNE_CONCAT(rmsNormBackward, PTUNE_ELEMENTWISE_SUFFIX)(const RmsNormArgs<T>& a, int64_t b, int64_t e) { \
    rmsNormBackwardRows(a, b, e);                                                                              \
  }                                                                                                            \
  void PTUNE_CONCAT(rotaryForward, PTUNE_ELEMENTWISE_SUFFIX)(const RotaryArgs<T>& a, int64_t b, int64_t e) {    \
    rotaryRows<T, false>(a, b, e);                                                                             \
  }                                                                                                            \
  void PTUNE_CONCAT(rotaryBackward, PTUNE_ELEMENTWISE_SUFFIX)(const RotaryArgs<T>& a, int64_t b, int64_t e) {   \
    rotaryRows<T, true>(a, b, e);                                                                              \
  }                                                                                                            \
  void PTUNE_CONCAT(siluMulForward, PTUNE_ELEMENTWISE_SUFFIX)(const SiluMulArgs<T>& a, int64_t b, int64_t e) {  \
    siluMulForwardRange(a, b, e);                                                                              \
  }                                                                                                            \
  void PTUNE_CONCAT(siluMulBackward, PTUNE_ELEMENTWISE_SUFFIX)(const SiluMulArgs<T>& a, int64_t b, int64_t e) { \
    siluMulBackwardRange(a, b, e);                                                                             \
  }                                                                                                            \
  }
