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

#include "core/simd_math.h"
#include "models/attention/kernel.h"

namespace ptune::models::attention_kernel {
namespace {

using simd_math::expOf;
using simd_math::logOf;

template <typename T>
PTUNE_INLINE T lowestHalf() {
  return std::numeric_limits<T>::lowest() / 2;
}

/// 32-byte vectors (GCC's vector extensions: AVX registers in the AVX2 build, pairs of SSE
/// registers in the portable one).
template <typename T>
struct Simd;
template <>
struct Simd<float> {
  typedef float V __attribute__((vector_size(32)));
  static constexpr int64_t kWidth = 8;
};
template <>
struct Simd<double> {
  typedef double V __attribute__((vector_size(32)));
  static constexpr int64_t kWidth = 4;
};

template <typename T>
PTUNE_INLINE typename Simd<T>::V load(const T* p) {
  typename Simd<T>::V v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
template <typename T>
PTUNE_INLINE void store(T* p, typename Simd<T>::V v) {
  __builtin_memcpy(p, &v, sizeof v);
}
template <typename T>
PTUNE_INLINE T sum(typename Simd<T>::V v) {
  T total = 0;
  for (int64_t l = 0; l < Simd<T>::kWidth; ++l) total += v[l];
  return total;
}

/// Query rows handled together: each key/value vector loaded from the (D, Kp) tables serves
/// all of them, and the gradient tables are read and written once per block, not once per row.
constexpr int64_t kRows = 4;

/// The key count rounded up to whole vectors (the transposed tables' row length).
PTUNE_INLINE int64_t padded(int64_t K) { return (K + 7) / 8 * 8; }

/// n rounded up to whole vectors of T: the columns a block's vector loops cover (<= padded(n)).
template <typename T>
PTUNE_INLINE int64_t wholeVectors(int64_t n) {
  return (n + Simd<T>::kWidth - 1) / Simd<T>::kWidth * Simd<T>::kWidth;
}

/// out[r][c] = sum_d x[r][d] * table[d][c] for the R rows of x (R, D) and the columns
/// [0, n) of table (D, Kp), whole vectors (up to n rounded up); out is (R, Kp).
template <typename T>
PTUNE_INLINE void rowsTimesTable(const T* __restrict x, int64_t R, const T* __restrict table, T* __restrict out,
                                 int64_t n, int64_t Kp, int64_t D) {
  typedef typename Simd<T>::V V;
  constexpr int64_t W = Simd<T>::kWidth;
  for (int64_t c = 0; c < n; c += W) {
    V acc[kRows] = {};
    for (int64_t d = 0; d < D; ++d) {
      const V t = load(table + d * Kp + c);
      for (int64_t r = 0; r < kRows; ++r) acc[r] += x[r * D + d] * t;
    }
    for (int64_t r = 0; r < R; ++r) store(out + r * Kp + c, acc[r]);
  }
}

/// out[r][d] = sum_c p[r][c] * table[d][c] over whole vectors up to n (p zero beyond each
/// row's keys); out is (R, D).
template <typename T>
PTUNE_INLINE void rowsTimesTableT(const T* __restrict p, int64_t R, const T* __restrict table, T* __restrict out,
                                  int64_t n, int64_t Kp, int64_t D) {
  typedef typename Simd<T>::V V;
  constexpr int64_t W = Simd<T>::kWidth;
  for (int64_t d = 0; d < D; ++d) {
    V acc[kRows] = {};
    for (int64_t c = 0; c < n; c += W) {
      const V t = load(table + d * Kp + c);
      for (int64_t r = 0; r < kRows; ++r) acc[r] += load(p + r * Kp + c) * t;
    }
    for (int64_t r = 0; r < R; ++r) out[r * D + d] = sum<T>(acc[r]);
  }
}

/// table[d][c] += sum_r w[r][c] * x[r][d] for whole vectors up to n: table (D, Kp), w (R, Kp)
/// (zero beyond each row's keys), x (R, D).
template <typename T>
PTUNE_INLINE void accumulateTable(T* __restrict table, const T* __restrict w, const T* __restrict x, int64_t n,
                                  int64_t Kp, int64_t D) {
  typedef typename Simd<T>::V V;
  constexpr int64_t W = Simd<T>::kWidth;
  for (int64_t d = 0; d < D; ++d) {
    T* row = table + d * Kp;
    for (int64_t c = 0; c < n; c += W) {
      V acc = load(row + c);
      for (int64_t r = 0; r < kRows; ++r) acc += load(w + r * Kp + c) * x[r * D + d];
      store(row + c, acc);
    }
  }
}

/// (D, Kp) transpose of rows (K, D), zero in the padding columns.
template <typename T>
PTUNE_INLINE void transpose(const T* __restrict rows, T* __restrict t, int64_t K, int64_t Kp, int64_t D) {
  for (int64_t d = 0; d < D; ++d) {
    for (int64_t j = 0; j < K; ++j) t[d * Kp + j] = rows[j * D + d];
    for (int64_t j = K; j < Kp; ++j) t[d * Kp + j] = 0;
  }
}

/// The (D, Kp) key and value tables of task (b, g).
template <typename T>
PTUNE_INLINE void loadTables(const Args<T>& a, int64_t D, int64_t task, T* kt, T* vt) {
  transpose(a.k + task * a.kv_task, kt, a.K, padded(a.K), D);
  transpose(a.v + task * a.kv_task, vt, a.K, padded(a.K), D);
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

/// One block of R <= kRows consecutive queries i0.. of head h, batch row b: fills the (R, Kp)
/// scores s = scale * q.k + bias over the keys the block may see (the last row's limit, n),
/// and per row its key count n_r (keys [n_r, n) are hidden from row r: their probability is 0)
/// and its maximum. A fully hidden row (max <= lowest / 2) gets all K keys, its scores
/// completed here, so that its softmax is uniform over them as the composed ops make it.
/// Returns n, raised to K when some row needed all keys.
template <typename T>
PTUNE_INLINE int64_t blockScores(const Args<T>& a, int64_t D, int64_t b, int64_t h, int64_t i0, int64_t R,
                                 const T* kt, T* __restrict s, int64_t* rows_n, T* rows_max, T* qblock) {
  const int64_t Kp = padded(a.K);
  for (int64_t r = 0; r < kRows; ++r) {
    for (int64_t d = 0; d < D; ++d) qblock[r * D + d] = r < R ? a.q[((b * a.H + h) * a.S + i0 + r) * D + d] : T(0);
  }
  int64_t n = keyLimit(a, i0 + R - 1);
  rowsTimesTable(qblock, R, kt, s, n, Kp, D);
  bool widen = false;
  for (int64_t r = 0; r < R; ++r) {
    T* row = s + r * Kp;
    const T* bias = biasRow(a, b, h, i0 + r);
    const int64_t nr = keyLimit(a, i0 + r);
#pragma omp simd
    for (int64_t j = 0; j < nr; ++j) row[j] = row[j] * a.scale + bias[j];
    T m = std::numeric_limits<T>::lowest();
    // A NaN score is skipped here but turns its exp, the row's sum and so the output into NaN.
#pragma omp simd reduction(max : m)
    for (int64_t j = 0; j < nr; ++j) m = row[j] > m ? row[j] : m;
    rows_n[r] = nr;
    rows_max[r] = m;
    widen |= nr < a.K && m <= lowestHalf<T>();
  }
  if (!widen) return n;
  // Padding queries that see no key: their softmax runs over all K keys (equal lowest scores).
  for (int64_t r = 0; r < R; ++r) {
    if (!(rows_n[r] < a.K && rows_max[r] <= lowestHalf<T>())) continue;
    T* row = s + r * Kp;
    const T* bias = biasRow(a, b, h, i0 + r);
    T m = std::numeric_limits<T>::lowest();
    for (int64_t j = 0; j < a.K; ++j) {
      T dot = 0;
      for (int64_t d = 0; d < D; ++d) dot += qblock[r * D + d] * kt[d * Kp + j];
      row[j] = dot * a.scale + bias[j];
      m = row[j] > m ? row[j] : m;
    }
    rows_n[r] = a.K;
    rows_max[r] = m;
  }
  return a.K;
}

/// kD > 0: the head dim as a compile-time constant (the loops over it unroll); 0: a.D.
template <typename T, int64_t kD>
void forwardTasks(const Args<T>& a, int64_t begin, int64_t end, T* scratch) {
  const int64_t K = a.K, Kp = padded(K), D = kD > 0 ? kD : a.D, S = a.S, groups = a.H / a.G;
  T* kt = scratch;               // (D, Kp)
  T* vt = kt + D * Kp;           // (D, Kp)
  T* s = vt + D * Kp;            // (kRows, Kp) scores, then probabilities
  T* qblock = s + kRows * Kp;    // (kRows, D)
  T* oblock = qblock + kRows * D;  // (kRows, D)
  int64_t rows_n[kRows];
  T rows_max[kRows];
  for (int64_t task = begin; task < end; ++task) {
    const int64_t b = task / a.G, g = task % a.G;
    loadTables(a, D, task, kt, vt);
    for (int64_t h = g * groups; h < (g + 1) * groups; ++h) {
      for (int64_t i0 = 0; i0 < S; i0 += kRows) {
        const int64_t R = S - i0 < kRows ? S - i0 : kRows;
        const int64_t n = blockScores(a, D, b, h, i0, R, kt, s, rows_n, rows_max, qblock);
        const int64_t nv = wholeVectors<T>(n);  // <= Kp
        for (int64_t r = 0; r < kRows; ++r) {
          T* p = s + r * Kp;
          if (r >= R) {  // unused rows of the last block: zero weights
            for (int64_t j = 0; j < nv; ++j) p[j] = 0;
            continue;
          }
          const int64_t nr = rows_n[r];
          const T m = rows_max[r];
          T total = 0;
#pragma omp simd reduction(+ : total)
          for (int64_t j = 0; j < nr; ++j) {
            p[j] = expOf(p[j] - m);
            total += p[j];
          }
          const T inv = T(1) / total;
#pragma omp simd
          for (int64_t j = 0; j < nr; ++j) p[j] *= inv;
          for (int64_t j = nr; j < nv; ++j) p[j] = 0;
          a.lse[(b * a.H + h) * S + i0 + r] = m + logOf(total);
        }
        rowsTimesTableT(s, R, vt, oblock, nv, Kp, D);
        for (int64_t r = 0; r < R; ++r) {
          for (int64_t d = 0; d < D; ++d) a.out[((b * a.H + h) * S + i0 + r) * D + d] = oblock[r * D + d];
        }
      }
    }
  }
}

template <typename T, int64_t kD>
void backwardTasks(const Args<T>& a, int64_t begin, int64_t end, T* scratch) {
  const int64_t K = a.K, Kp = padded(K), D = kD > 0 ? kD : a.D, S = a.S, groups = a.H / a.G;
  T* kt = scratch;                    // (D, Kp)
  T* vt = kt + D * Kp;                // (D, Kp)
  T* dkt = vt + D * Kp;               // (D, Kp) accumulated over the group's heads and queries
  T* dvt = dkt + D * Kp;              // (D, Kp)
  T* p = dvt + D * Kp;                // (kRows, Kp) probabilities
  T* ds = p + kRows * Kp;             // (kRows, Kp) dp, then the scores' gradient
  T* qblock = ds + kRows * Kp;        // (kRows, D)
  T* dblock = qblock + kRows * D;     // (kRows, D) the output gradient, zero in unused rows
  T* dqblock = dblock + kRows * D;    // (kRows, D)
  int64_t rows_n[kRows];
  T rows_max[kRows];
  for (int64_t task = begin; task < end; ++task) {
    const int64_t b = task / a.G, g = task % a.G;
    loadTables(a, D, task, kt, vt);
    for (int64_t x = 0; x < 2 * D * Kp; ++x) dkt[x] = 0;  // dkt and dvt are adjacent
    for (int64_t h = g * groups; h < (g + 1) * groups; ++h) {
      for (int64_t i0 = 0; i0 < S; i0 += kRows) {
        const int64_t R = S - i0 < kRows ? S - i0 : kRows;
        const int64_t n = blockScores(a, D, b, h, i0, R, kt, p, rows_n, rows_max, qblock);
        const int64_t nv = wholeVectors<T>(n);  // <= Kp
        for (int64_t r = 0; r < kRows; ++r) {
          for (int64_t d = 0; d < D; ++d) {
            dblock[r * D + d] = r < R ? a.grad_out[((b * a.H + h) * S + i0 + r) * D + d] : T(0);
          }
        }
        rowsTimesTable(dblock, R, vt, ds, nv, Kp, D);  // dp_j = dout . v_j
        for (int64_t r = 0; r < kRows; ++r) {
          T* pr = p + r * Kp;
          T* dsr = ds + r * Kp;
          if (r >= R) {
            for (int64_t j = 0; j < nv; ++j) pr[j] = dsr[j] = 0;
            continue;
          }
          const int64_t row = (b * a.H + h) * S + i0 + r;
          const int64_t nr = rows_n[r];
          // p = exp(s - lse); a fully hidden row's lse has lost log(sum) to rounding next to
          // the lowest value, so its softmax is recomputed from the maximum instead.
          T shift = a.lse[row], inv = 1;
          if (nr == K && shift <= lowestHalf<T>()) {
            T total = 0;
            for (int64_t j = 0; j < nr; ++j) total += expOf(pr[j] - rows_max[r]);
            shift = rows_max[r];
            inv = T(1) / total;
          }
          T delta = 0;  // dout . out = sum_j p_j dp_j
          for (int64_t d = 0; d < D; ++d) delta += dblock[r * D + d] * a.out[row * D + d];
          const T scale = a.scale;
#pragma omp simd
          for (int64_t j = 0; j < nr; ++j) {
            pr[j] = expOf(pr[j] - shift) * inv;
            dsr[j] = pr[j] * (dsr[j] - delta) * scale;
          }
          for (int64_t j = nr; j < nv; ++j) pr[j] = dsr[j] = 0;
        }
        rowsTimesTableT(ds, R, kt, dqblock, nv, Kp, D);  // dq = scale sum_j ds_j k_j
        for (int64_t r = 0; r < R; ++r) {
          for (int64_t d = 0; d < D; ++d) a.grad_q[((b * a.H + h) * S + i0 + r) * D + d] = dqblock[r * D + d];
        }
        accumulateTable(dkt, ds, qblock, nv, Kp, D);  // dk_j += scale ds_j q
        accumulateTable(dvt, p, dblock, nv, Kp, D);   // dv_j += p_j dout
      }
    }
    T* dk = a.grad_k + task * K * D;
    T* dv = a.grad_v + task * K * D;
    for (int64_t j = 0; j < K; ++j) {
      for (int64_t d = 0; d < D; ++d) {
        dk[j * D + d] = dkt[d * Kp + j];
        dv[j * D + d] = dvt[d * Kp + j];
      }
    }
  }
}

/// forwardTasks / backwardTasks with the common head dims unrolled.
template <typename T>
void forwardAnyD(const Args<T>& a, int64_t begin, int64_t end, T* scratch) {
  switch (a.D) {
    case 8: return forwardTasks<T, 8>(a, begin, end, scratch);
    case 16: return forwardTasks<T, 16>(a, begin, end, scratch);
    case 32: return forwardTasks<T, 32>(a, begin, end, scratch);
    case 64: return forwardTasks<T, 64>(a, begin, end, scratch);
    case 128: return forwardTasks<T, 128>(a, begin, end, scratch);
    default: return forwardTasks<T, 0>(a, begin, end, scratch);
  }
}
template <typename T>
void backwardAnyD(const Args<T>& a, int64_t begin, int64_t end, T* scratch) {
  switch (a.D) {
    case 8: return backwardTasks<T, 8>(a, begin, end, scratch);
    case 16: return backwardTasks<T, 16>(a, begin, end, scratch);
    case 32: return backwardTasks<T, 32>(a, begin, end, scratch);
    case 64: return backwardTasks<T, 64>(a, begin, end, scratch);
    case 128: return backwardTasks<T, 128>(a, begin, end, scratch);
    default: return backwardTasks<T, 0>(a, begin, end, scratch);
  }
}

#undef PTUNE_INLINE

}  // namespace
}  // namespace ptune::models::attention_kernel
