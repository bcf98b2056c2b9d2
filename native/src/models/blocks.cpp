#include "models/blocks.h"

#include <ATen/ATen.h>
#include <torch/version.h>

#include <cmath>
#include <limits>
#include <vector>

#include "core/check.h"
#include "core/dtypes.h"
#include "models/attention/fused_attention.h"
#include "models/elementwise/fused.h"

namespace ptune::models {
namespace {
at::ScalarType computeType(const at::Tensor& x) {
  return x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}
}  // namespace

at::Tensor rmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  if (elementwise::applies(x) && weight.scalar_type() == x.scalar_type() && weight.device() == x.device()) {
    return elementwise::rmsNorm(x, weight, eps);
  }
  const at::Tensor xf = x.to(computeType(x));
  const at::Tensor variance = xf.pow(2).mean(-1, /*keepdim=*/true);
  return weight * (xf * at::rsqrt(variance + eps)).to(x.scalar_type());
}

at::Tensor layerNorm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps) {
  return at::layer_norm(x, {x.size(-1)}, weight, bias, eps);
}

at::Tensor activate(const at::Tensor& x, Activation kind) {
  switch (kind) {
    case Activation::kSilu:
      return at::silu(x);
    case Activation::kGeluExact:
      return at::gelu(x);
    case Activation::kGeluTanh:
      // transformers' NewGELUActivation, 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): the same
      // formula as libtorch's tanh-approximate GELU, one op and one backward instead of nine.
      return at::gelu(x, "tanh");
    case Activation::kGeluBloom:
      // bloom_gelu_forward: x * 0.5 * (1 + tanh(0.79788456 x (1 + 0.044715 x^2)))
      return x * 0.5 * (1.0 + at::tanh(0.79788456 * x * (1 + 0.044715 * x * x)));
    case Activation::kRelu:
      return at::relu(x);
  }
  throw Error(detail::concat("unknown activation ", static_cast<int32_t>(kind)));
}

at::Tensor gatedActivation(const at::Tensor& gate, const at::Tensor& up, Activation kind) {
  if (kind == Activation::kSilu && elementwise::applies(gate) && up.scalar_type() == gate.scalar_type() &&
      up.sizes() == gate.sizes()) {
    return elementwise::siluMul(gate, up);
  }
  return activate(gate, kind) * up;
}

bool fewRows(const at::Tensor& x) {
  return x.device().is_cpu() && x.numel() / std::max<int64_t>(1, x.size(-1)) <= kFewRows;
}

at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  if (fewRows(x)) return rowsTimesMatrix(x, weight, false, bias);
  return bias.defined() ? at::linear(x, weight, bias) : at::linear(x, weight);
}

at::Tensor rowsTimesMatrix(const at::Tensor& x, const at::Tensor& matrix, bool in_out, const at::Tensor& bias) {
  // Decoding: one matrix-vector product per row reads the weights once, unpacked; a GEMM call
  // (what linear/matmul make of a few rows) first copies them into packed panels, 2-5x slower
  // at these shapes on OpenBLAS (bench/PROFILE.md).
  const int64_t in = x.size(-1), rows = x.numel() / std::max<int64_t>(1, in);
  const at::Tensor m = in_out ? matrix.t() : matrix;  // (out, in)
  const at::Tensor flat = x.reshape({rows, in});
  std::vector<at::Tensor> outs;
  outs.reserve(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) outs.push_back(at::mv(m, flat[r]));
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = m.size(0);
  at::Tensor out = (rows == 1 ? outs[0] : at::stack(outs)).view(shape);
  return bias.defined() ? out + bias : out;
}

Rotary::Rotary(int64_t head_dim, const ModelSpec& spec) {
  // inv_freq = 1 / theta^(2i/D), computed in fp32 exactly as transformers does.
  const at::Tensor exponents =
      at::arange(0, head_dim, 2, at::TensorOptions().dtype(at::kLong)).to(at::kFloat) /
      static_cast<double>(head_dim);
  const at::Tensor inv_freq = 1.0 / at::pow(spec.rope_theta, exponents);
  switch (static_cast<RopeType>(spec.rope_type)) {
    case RopeType::kRopeDefault:
      inv_freq_ = inv_freq;
      break;
    case RopeType::kRopeLinear:
      PTUNE_CHECK(spec.rope_factor > 0, "rope factor must be positive, got ", spec.rope_factor);
      inv_freq_ = inv_freq / spec.rope_factor;
      break;
    case RopeType::kRopeLlama3: {
      // Llama 3.1: long wavelengths slowed by `factor`, short ones kept, a smooth blend between.
      const double factor = spec.rope_factor, low = spec.rope_low_freq_factor,
                   high = spec.rope_high_freq_factor;
      const double old_context = static_cast<double>(spec.rope_original_max_position);
      PTUNE_CHECK(factor > 0 && low > 0 && high > low && old_context > 0,
                  "llama3 rope scaling needs factor > 0, 0 < low_freq_factor < high_freq_factor and "
                  "original_max_position_embeddings > 0");
      const double low_freq_wavelen = old_context / low, high_freq_wavelen = old_context / high;
      const at::Tensor wavelen = 2 * M_PI / inv_freq;
      at::Tensor scaled = at::where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq);
      const at::Tensor smooth = (old_context / wavelen - low) / (high - low);
      const at::Tensor smoothed = (1 - smooth) * scaled / factor + smooth * scaled;
      const at::Tensor medium = wavelen.ge(high_freq_wavelen) & wavelen.le(low_freq_wavelen);
      inv_freq_ = at::where(medium, smoothed, scaled);
      break;
    }
    default:
      PTUNE_CHECK(false, "unknown rope type ", spec.rope_type);
  }
}

void Rotary::tables(const at::Tensor& positions, at::ScalarType dtype, at::Tensor& cos,
                    at::Tensor& sin) const {
  // freqs (B, S, D/2) = positions (B, S, 1) * inv_freq (1, 1, D/2)
  const at::ScalarType compute = dtype == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor freqs =
      positions.to(compute).unsqueeze(-1) * inv_freq_.to(positions.device(), compute).view({1, 1, -1});
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

at::Tensor rotaryHeads(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  if (elementwise::applies(x) && cos.scalar_type() == x.scalar_type() && x.stride(3) == 1) {
    return elementwise::rotaryHeads(x, cos, sin);
  }
  return applyRotary(x.transpose(1, 2), cos, sin);
}

std::vector<double> alibiSlopes(int64_t heads) {
  PTUNE_CHECK(heads >= 1, "ALiBi needs at least one head");
  int64_t closest = 1;
  while (closest * 2 <= heads) closest *= 2;
  const double base = std::pow(2.0, -8.0 / static_cast<double>(closest));
  std::vector<double> slopes;
  for (int64_t k = 1; k <= closest; ++k) slopes.push_back(std::pow(base, static_cast<double>(k)));
  if (closest != heads) {
    const double extra_base = std::pow(2.0, -4.0 / static_cast<double>(closest));
    const int64_t extra = std::min(closest, heads - closest);
    for (int64_t k = 1; k <= 2 * extra; k += 2) slopes.push_back(std::pow(extra_base, static_cast<double>(k)));
  }
  return slopes;
}

at::Tensor alibiBias(const std::vector<double>& slopes, const at::Tensor& key_mask, at::ScalarType dtype) {
  const int64_t H = static_cast<int64_t>(slopes.size());
  const at::Tensor mask = key_mask.to(at::kLong);                               // (B, K)
  const at::Tensor positions = ((mask.cumsum(1) - 1) * mask).to(dtype);        // (B, K)
  // BLOOM rounds the slopes to fp32 before multiplying (torch.tensor of a float power).
  const at::Tensor s =
      at::tensor(slopes, at::TensorOptions().dtype(at::kDouble)).to(at::kFloat).to(key_mask.device(), dtype);
  return (s.view({1, H, 1, 1}) * positions.unsqueeze(1).unsqueeze(1));         // (B, H, 1, K)
}

at::Tensor attentionBias(const at::Tensor& key_mask, int64_t new_positions, at::ScalarType dtype,
                         bool causal, int64_t window) {
  const int64_t total = key_mask.size(1);
  const int64_t past = total - new_positions;
  const auto long_opts = at::TensorOptions().dtype(at::kLong).device(key_mask.device());
  at::Tensor allowed = key_mask.unsqueeze(1).expand({key_mask.size(0), new_positions, total});  // (B, S, K)
  if (causal) {
    const at::Tensor query_index = at::arange(past, total, long_opts).view({-1, 1});  // (S, 1)
    const at::Tensor key_index = at::arange(0, total, long_opts).view({1, -1});       // (1, K)
    at::Tensor visible = key_index.le(query_index);                                  // (S, K)
    if (window > 0) visible = visible & key_index.gt(query_index - window);
    allowed = allowed & visible.unsqueeze(0);
  }
  const double lowest = maskFillValue(dtype);
  return at::zeros(allowed.sizes(), at::TensorOptions().dtype(dtype).device(key_mask.device()))
      .masked_fill_(allowed.logical_not(), lowest)
      .unsqueeze(1);
}

at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const at::Tensor& bias, double scale, bool causal) {
  if (attention_kernel::applies(q, bias)) return attention_kernel::fused(q, k, v, bias, scale, causal);
  if (!q.is_cpu() && sdpaAvailable()) return attentionSdpa(q, k, v, bias, scale);
  return attentionComposed(q, k, v, bias, scale);
}

bool sdpaAvailable() { return TORCH_VERSION_MAJOR >= 2; }

// q (B, H, S, D), k, v (B, G, K, D), bias (B, 1 or H, S, K) in q's dtype -> (B, H, S, D)
at::Tensor attentionSdpa(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                         const at::Tensor& bias, double scale) {
  PTUNE_CHECK(q.size(1) % k.size(1) == 0, "attention: ", q.size(1), " query heads over ", k.size(1),
              " key/value heads");
#if TORCH_VERSION_MAJOR >= 2
  // Query head h reads key/value head h / (H / G), as attentionComposed's grouping does.
  return at::scaled_dot_product_attention(q, k, v, bias.to(q.scalar_type()), /*dropout_p=*/0.0,
                                          /*is_causal=*/false, scale, /*enable_gqa=*/k.size(1) != q.size(1));
#else
  (void)v;
  (void)bias;
  (void)scale;
  throw Error(detail::concat("attention: libtorch ", TORCH_VERSION_MAJOR, ".", TORCH_VERSION_MINOR,
                             " has no scaled_dot_product_attention (PyTorch 2.x builds have)"));
#endif
}

at::Tensor attentionComposed(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                             const at::Tensor& bias, double scale) {
  const int64_t B = q.size(0), H = q.size(1), S = q.size(2), D = q.size(3);
  const int64_t G = k.size(1), K = k.size(2);
  const int64_t groups = H / G;
  // Query heads h*groups .. h*groups+groups-1 share key/value head h (transformers' repeat_kv);
  // viewing q as (B, G, groups*S, D) avoids materialising repeated keys.
  const at::Tensor qg = q.reshape({B, G, groups * S, D});
  at::Tensor scores = at::matmul(qg, k.transpose(-1, -2)).mul_(scale);  // (B, G, groups*S, K)
  // bias (B, 1, S, K) is shared by every head; (B, H, S, K) is per head.
  const at::Tensor head_bias = bias.size(1) == 1 ? bias.unsqueeze(1) : bias.reshape({B, G, groups, S, K});
  scores = scores.view({B, G, groups, S, K}) + head_bias;
  const at::Tensor probs = at::softmax(scores, -1, computeType(q)).to(q.scalar_type());
  const at::Tensor out = at::matmul(probs.view({B, G, groups * S, K}), v);  // (B, G, groups*S, D)
  return out.view({B, H, S, D});
}

void KvCache::reserve(int64_t capacity) {
  PTUNE_CHECK(capacity >= length(), "KV cache: capacity ", capacity, " below the ", length(), " cached positions");
  key_storage.clear();
  value_storage.clear();
  for (size_t i = 0; i < keys.size(); ++i) {
    const int64_t L = keys[i].size(2);
    at::Tensor ks = at::empty({keys[i].size(0), keys[i].size(1), capacity, keys[i].size(3)}, keys[i].options());
    at::Tensor vs = at::empty({values[i].size(0), values[i].size(1), capacity, values[i].size(3)}, values[i].options());
    ks.narrow(2, 0, L).copy_(keys[i]);
    vs.narrow(2, 0, L).copy_(values[i]);
    keys[i] = ks.narrow(2, 0, L);
    values[i] = vs.narrow(2, 0, L);
    key_storage.push_back(std::move(ks));
    value_storage.push_back(std::move(vs));
  }
}

void appendToCache(KvCache* cache, size_t layer, at::Tensor& k, at::Tensor& v) {
  if (cache == nullptr) return;
  const int64_t L = cache->keys[layer].size(2), S = k.size(2);
  if (layer < cache->key_storage.size() && L + S <= cache->key_storage[layer].size(2) && !k.requires_grad() &&
      !v.requires_grad()) {
    cache->key_storage[layer].narrow(2, L, S).copy_(k);
    cache->value_storage[layer].narrow(2, L, S).copy_(v);
    k = cache->key_storage[layer].narrow(2, 0, L + S);
    v = cache->value_storage[layer].narrow(2, 0, L + S);
  } else {
    k = at::cat({cache->keys[layer], k}, 2);
    v = at::cat({cache->values[layer], v}, 2);
  }
  cache->keys[layer] = k;
  cache->values[layer] = v;
}

}  // namespace ptune::models
