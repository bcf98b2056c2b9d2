// The fused attention kernel's body, included by kernel_base.cpp and kernel_avx2.cpp with
// PTUNE_ATTENTION_VARIANT set to the function-name suffix. Everything here has internal
// linkage and uses no library inline functions, so each variant keeps its own instructions.
//
// Per query row: scores s_j = scale * q.k_j + bias_j over the keys it may see, softmax
// p = exp(s - max) / sum, out = sum_j p_j v_j, and lse = max + log(sum) for the backward pass,
// which recomputes p = exp(s - lse) instead of storing the (B, H, S, K) probabilities:
// dp_j = dout.v_j, ds_j = p_j (dp_j - dout.out), dq = scale sum_j ds_j k_j,
// dk_j += scale ds_j q, dv_j += p_j dout. Keys and values are read transposed, (D, K), so every
// inner loop runs over contiguous keys and vectorises.
//
// Causal skip: keys after causal_past + i carry the dtype's lowest bias, so their probability
// is exactly 0 unless every key of the row is hidden (a padding query), where softmax over
// equal lowest scores is uniform over all K keys; such rows (max score <= lowest / 2) are
// computed over all keys, so the result equals the unskipped computation.
#include <cstdint>
#include <limits>

#include "models/attention/kernel.h"

namespace ptune::models::attention_kernel {
namespace {

#define PTUNE_INLINE inline __attribute__((always_inline))

// exp for float, vectorisable (given -fno-trapping-math): Cody-Waite reduction by ln 2 and Cephes' degree-6 polynomial
// (about 1 ulp on [-87.3, 88.7]); below -87.3 it returns 0 (expf would return subnormals), NaN
// stays NaN.
PTUNE_INLINE float expOf(float x) {
  const float hi = 88.7f, lo = -87.3f;
  const float clamped = x > hi ? hi : (x < lo ? lo : x);
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

template <typename T>
PTUNE_INLINE T lowestHalf() {
  return std::numeric_limits<T>::lowest() / 2;
}

/// s[0, n) = scale * (q . keys_t[:, j]) + bias[j]; returns the maximum of the non-NaN scores.
template <typename T>
PTUNE_INLINE T scores(const T* __restrict q, const T* __restrict kt, const T* __restrict bias, T* __restrict s,
                      int64_t n, int64_t K, int64_t D, T scale) {
  {
    const T q0 = q[0];
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) s[j] = q0 * kt[j];
  }
  for (int64_t d = 1; d < D; ++d) {
    const T qd = q[d];
    const T* __restrict row = kt + d * K;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) s[j] += qd * row[j];
  }
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) s[j] = s[j] * scale + bias[j];
  // A NaN score is skipped here but turns its exp, the row's sum and so the output into NaN.
  T m = std::numeric_limits<T>::lowest();
#pragma omp simd reduction(max : m)
  for (int64_t j = 0; j < n; ++j) m = s[j] > m ? s[j] : m;
  return m;
}

/// (D, K) transpose of rows (K, D).
template <typename T>
PTUNE_INLINE void transpose(const T* __restrict rows, T* __restrict t, int64_t K, int64_t D) {
  for (int64_t j = 0; j < K; ++j) {
    for (int64_t d = 0; d < D; ++d) t[d * K + j] = rows[j * D + d];
  }
}

template <typename T>
PTUNE_INLINE int64_t keyLimit(const Args<T>& a, int64_t i) {
  if (a.causal_past < 0) return a.K;
  const int64_t limit = a.causal_past + i + 1;
  return limit < a.K ? limit : a.K;
}

template <typename T>
PTUNE_INLINE const T* biasRow(const Args<T>& a, int64_t b, int64_t h, int64_t i) {
  return a.bias + b * a.bias_b + h * a.bias_h + i * a.bias_s;
}

template <typename T>
void forwardTasks(const Args<T>& a, int64_t begin, int64_t end, T* scratch) {
  const int64_t K = a.K, D = a.D, S = a.S, groups = a.H / a.G;
  T* kt = scratch;           // (D, K)
  T* vt = kt + D * K;        // (D, K)
  T* s = vt + D * K;         // (K)
  for (int64_t task = begin; task < end; ++task) {
    const int64_t b = task / a.G, g = task % a.G;
    transpose(a.k + task * K * D, kt, K, D);
    transpose(a.v + task * K * D, vt, K, D);
    for (int64_t h = g * groups; h < (g + 1) * groups; ++h) {
      for (int64_t i = 0; i < S; ++i) {
        const int64_t row = (b * a.H + h) * S + i;
        const T* q = a.q + row * D;
        const T* bias = biasRow(a, b, h, i);
        int64_t n = keyLimit(a, i);
        T m = scores(q, kt, bias, s, n, K, D, a.scale);
        if (n < K && m <= lowestHalf<T>()) {  // every visible key hidden: softmax over all keys
          n = K;
          m = scores(q, kt, bias, s, n, K, D, a.scale);
        }
        T sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int64_t j = 0; j < n; ++j) {
          s[j] = expOf(s[j] - m);
          sum += s[j];
        }
        const T inv = T(1) / sum;
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) s[j] *= inv;
        T* out = a.out + row * D;
        for (int64_t d = 0; d < D; ++d) {
          const T* __restrict vrow = vt + d * K;
          T acc = 0;
#pragma omp simd reduction(+ : acc)
          for (int64_t j = 0; j < n; ++j) acc += s[j] * vrow[j];
          out[d] = acc;
        }
        a.lse[row] = m + logOf(sum);
      }
    }
  }
}

template <typename T>
void backwardTasks(const Args<T>& a, int64_t begin, int64_t end, T* scratch) {
  const int64_t K = a.K, D = a.D, S = a.S, groups = a.H / a.G;
  T* kt = scratch;        // (D, K)
  T* vt = kt + D * K;     // (D, K)
  T* dkt = vt + D * K;    // (D, K) accumulated over the group's heads and queries
  T* dvt = dkt + D * K;   // (D, K)
  T* p = dvt + D * K;     // (K)
  T* ds = p + K;          // (K)
  for (int64_t task = begin; task < end; ++task) {
    const int64_t b = task / a.G, g = task % a.G;
    transpose(a.k + task * K * D, kt, K, D);
    transpose(a.v + task * K * D, vt, K, D);
    for (int64_t x = 0; x < 2 * D * K; ++x) dkt[x] = 0;  // dkt and dvt are adjacent
    for (int64_t h = g * groups; h < (g + 1) * groups; ++h) {
      for (int64_t i = 0; i < S; ++i) {
        const int64_t row = (b * a.H + h) * S + i;
        const T* q = a.q + row * D;
        const T* dout = a.grad_out + row * D;
        const T* out = a.out + row * D;
        const T lse = a.lse[row];
        // A fully hidden row (its lse near the lowest value) spread its weight over all keys;
        // there lse itself has lost log(sum) to rounding, so its softmax is recomputed in full.
        const bool hidden = lse <= lowestHalf<T>();
        const int64_t n = hidden ? K : keyLimit(a, i);
        const T m = scores(q, kt, biasRow(a, b, h, i), p, n, K, D, a.scale);
        T shift = lse, inv = 1;
        if (hidden) {
          T sum = 0;
          for (int64_t j = 0; j < n; ++j) sum += expOf(p[j] - m);
          shift = m;
          inv = T(1) / sum;
        }
        T delta = 0;  // dout . out = sum_j p_j dp_j
        for (int64_t d = 0; d < D; ++d) delta += dout[d] * out[d];
        {
          const T d0 = dout[0];
#pragma omp simd
          for (int64_t j = 0; j < n; ++j) ds[j] = d0 * vt[j];
        }
        for (int64_t d = 1; d < D; ++d) {
          const T dd = dout[d];
          const T* __restrict vrow = vt + d * K;
#pragma omp simd
          for (int64_t j = 0; j < n; ++j) ds[j] += dd * vrow[j];
        }
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) {
          p[j] = expOf(p[j] - shift) * inv;
          ds[j] = p[j] * (ds[j] - delta) * a.scale;
        }
        T* dq = a.grad_q + row * D;
        for (int64_t d = 0; d < D; ++d) {
          const T* __restrict krow = kt + d * K;
          T* __restrict dkrow = dkt + d * K;
          T* __restrict dvrow = dvt + d * K;
          const T qd = q[d], dd = dout[d];
          T acc = 0;
#pragma omp simd reduction(+ : acc)
          for (int64_t j = 0; j < n; ++j) {
            acc += ds[j] * krow[j];
            dkrow[j] += ds[j] * qd;
            dvrow[j] += p[j] * dd;
          }
          dq[d] = acc;
        }
      }
    }
    T* dk = a.grad_k + task * K * D;
    T* dv = a.grad_v + task * K * D;
    for (int64_t j = 0; j < K; ++j) {
      for (int64_t d = 0; d < D; ++d) {
        dk[j * D + d] = dkt[d * K + j];
        dv[j * D + d] = dvt[d * K + j];
      }
    }
  }
}

#undef PTUNE_INLINE

}  // namespace
}  // namespace ptune::models::attention_kernel
