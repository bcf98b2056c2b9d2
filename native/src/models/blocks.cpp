#include "models/blocks.h"

#include <ATen/ATen.h>

#include <limits>

#include "core/check.h"

namespace ptune::models {

at::Tensor rmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  const at::ScalarType compute =
      x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor xf = x.to(compute);
  const at::Tensor variance = xf.pow(2).mean(-1, /*keepdim=*/true);
  return weight * (xf * at::rsqrt(variance + eps)).to(x.scalar_type());
}

Rotary::Rotary(int64_t head_dim, const LlamaConfig& config) {
  // inv_freq = 1 / theta^(2i/D), computed in fp32 exactly as transformers does.
  const at::Tensor exponents =
      at::arange(0, head_dim, 2, at::TensorOptions().dtype(at::kLong)).to(at::kFloat) /
      static_cast<double>(head_dim);
  const at::Tensor inv_freq = 1.0 / at::pow(config.rope_theta, exponents);
  switch (static_cast<RopeType>(config.rope_type)) {
    case RopeType::kRopeDefault:
      inv_freq_ = inv_freq;
      break;
    case RopeType::kRopeLinear:
      PTUNE_CHECK(config.rope_factor > 0, "rope factor must be positive, got ", config.rope_factor);
      inv_freq_ = inv_freq / config.rope_factor;
      break;
    case RopeType::kRopeLlama3: {
      // Llama 3.1: long wavelengths slowed by `factor`, short ones kept, a smooth blend between.
      const double factor = config.rope_factor, low = config.rope_low_freq_factor,
                   high = config.rope_high_freq_factor;
      const double old_context = static_cast<double>(config.rope_original_max_position);
      PTUNE_CHECK(factor > 0 && low > 0 && high > low && old_context > 0,
                  "llama3 rope scaling needs factor > 0, 0 < low_freq_factor < high_freq_factor and "
                  "original_max_position_embeddings > 0");
      const double low_freq_wavelen = old_context / low, high_freq_wavelen = old_context / high;
      constexpr double kPi = 3.14159265358979323846;
      const at::Tensor wavelen = 2 * kPi / inv_freq;
      at::Tensor scaled = at::where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq);
      const at::Tensor smooth = (old_context / wavelen - low) / (high - low);
      const at::Tensor smoothed = (1 - smooth) * scaled / factor + smooth * scaled;
      const at::Tensor medium = wavelen.ge(high_freq_wavelen) & wavelen.le(low_freq_wavelen);
      inv_freq_ = at::where(medium, smoothed, scaled);
      break;
    }
    default:
      PTUNE_CHECK(false, "unknown rope type ", config.rope_type);
  }
}

void Rotary::tables(const at::Tensor& positions, at::ScalarType dtype, at::Tensor& cos,
                    at::Tensor& sin) const {
  // freqs (B, S, D/2) = positions (B, S, 1) * inv_freq (1, 1, D/2)
  const at::ScalarType compute = dtype == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor freqs =
      positions.to(compute).unsqueeze(-1) * inv_freq_.to(compute).view({1, 1, -1});
  const at::Tensor emb = at::cat({freqs, freqs}, -1);  // (B, S, D)
  cos = emb.cos().to(dtype).unsqueeze(1);
  sin = emb.sin().to(dtype).unsqueeze(1);
}

namespace {
at::Tensor rotateHalf(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}
}  // namespace

at::Tensor applyRotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  return x * cos + rotateHalf(x) * sin;
}

at::Tensor attentionBias(const at::Tensor& key_mask, int64_t new_positions, at::ScalarType dtype,
                         int64_t window) {
  const int64_t total = key_mask.size(1);
  const int64_t past = total - new_positions;
  const auto long_opts = at::TensorOptions().dtype(at::kLong).device(key_mask.device());
  const at::Tensor query_index = at::arange(past, total, long_opts).view({-1, 1});  // (S, 1)
  const at::Tensor key_index = at::arange(0, total, long_opts).view({1, -1});       // (1, K)
  at::Tensor causal = key_index.le(query_index);                                   // (S, K)
  if (window > 0) causal = causal & key_index.gt(query_index - window);
  const at::Tensor allowed = causal.unsqueeze(0) & key_mask.unsqueeze(1);          // (B, S, K)
  const double lowest = dtype == at::kDouble ? std::numeric_limits<double>::lowest()
                                             : std::numeric_limits<float>::lowest();
  return at::zeros(allowed.sizes(), at::TensorOptions().dtype(dtype).device(key_mask.device()))
      .masked_fill_(allowed.logical_not(), lowest)
      .unsqueeze(1);
}

at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const at::Tensor& bias, double scale) {
  const int64_t B = q.size(0), H = q.size(1), S = q.size(2), D = q.size(3);
  const int64_t G = k.size(1), K = k.size(2);
  const int64_t groups = H / G;
  // Query heads h*groups .. h*groups+groups-1 share key/value head h (transformers' repeat_kv);
  // viewing q as (B, G, groups*S, D) avoids materialising repeated keys.
  const at::Tensor qg = q.reshape({B, G, groups * S, D});
  at::Tensor scores = at::matmul(qg, k.transpose(-1, -2)).mul_(scale);  // (B, G, groups*S, K)
  scores = scores.view({B, G, groups, S, K}) + bias.unsqueeze(1);        // bias (B,1,1,S,K)
  const at::ScalarType compute =
      q.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor probs = at::softmax(scores, -1, compute).to(q.scalar_type());
  const at::Tensor out = at::matmul(probs.view({B, G, groups * S, K}), v);  // (B, G, groups*S, D)
  return out.view({B, H, S, D});
}

}  // namespace ptune::models
