// Dtype rules of the core (issue 12): the frozen model computes in its compute dtype (fp32, bf16
// or fp16; fp64 in tests), while what is trained — prompt parameters, encoders, classifier heads,
// their AdamW moments — and every loss stay in the master dtype, fp32 (fp64 beside an fp64 model).
// Activations are cast where the two meet, and only when the dtypes differ.
#pragma once

#include <c10/core/ScalarType.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <limits>

namespace ptune {

/// The dtype of trainable parameters, their moments and losses next to a model computing in
/// `compute`: fp64 for an fp64 model (gradient checks), else fp32.
inline c10::ScalarType masterType(c10::ScalarType compute) {
  return compute == c10::ScalarType::Double ? c10::ScalarType::Double : c10::ScalarType::Float;
}

/// The additive attention-bias value that hides a key in `dtype`. fp32 / fp64: the type's lowest
/// finite value (what transformers uses; fp32 results stay what they were). bf16 / fp16: half of
/// the lowest finite value, so that score + bias cannot round past the type's range into -inf for
/// any |score| below half its maximum (fp16: |score| < 32752), and a fully masked row (a padding
/// query) softmaxes to finite uniform weights instead of NaN.
inline double maskFillValue(c10::ScalarType dtype) {
  switch (dtype) {
    case c10::ScalarType::Double:
      return std::numeric_limits<double>::lowest();
    case c10::ScalarType::BFloat16:
      return 0.5 * static_cast<double>(std::numeric_limits<c10::BFloat16>::lowest());
    case c10::ScalarType::Half:
      return 0.5 * static_cast<double>(std::numeric_limits<c10::Half>::lowest());
    default:
      return std::numeric_limits<float>::lowest();
  }
}

}  // namespace ptune
