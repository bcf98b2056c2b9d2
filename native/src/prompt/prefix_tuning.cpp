// Prefix tuning / P-tuning v2 (Li & Liang 2021; Liu et al. 2022), PEFT's PrefixEncoder:
// per-layer key/value prefixes from an embedding (P, 2*L*G*D), or with prefix_projection from
// an embedding (P, G*D) through  Linear(G*D -> h), Tanh, Linear(h -> 2*L*G*D).  As PEFT does on
// grouped-query models, the prefix width is G*D (one prefix per key/value head). Prefix keys
// enter the KV cache as they are: they are not rotated with the input positions.
#include <ATen/ATen.h>

#include "core/check.h"
#include "prompt/methods.h"

namespace ptune::prompt {
namespace {

class PrefixTuning final : public PromptMethodImpl {
 public:
  PrefixTuning(const PromptSpec& spec, const ModelDims& dims, at::Generator& gen)
      : PromptMethodImpl(dims.device), dims_(dims), projection_(spec.prefix_projection) {
    const int64_t P = spec.num_virtual_tokens;
    const int64_t kv_dim = dims.kv_heads * dims.head_dim;
    const int64_t out = 2 * dims.layers * kv_dim;
    if (projection_) {
      const int64_t h = spec.encoder_hidden_size;
      PTUNE_CHECK(h > 0, "encoder_hidden_size must be positive with prefix_projection, got ", h);
      embedding_ = add("embedding", normalInit({P, kv_dim}, gen, dims.dtype));
      transform_.push_back(add("transform.0.weight", uniformInit({h, kv_dim}, kv_dim, gen, dims.dtype)));
      transform_.push_back(add("transform.0.bias", uniformInit({h}, kv_dim, gen, dims.dtype)));
      transform_.push_back(add("transform.2.weight", uniformInit({out, h}, h, gen, dims.dtype)));
      transform_.push_back(add("transform.2.bias", uniformInit({out}, h, gen, dims.dtype)));
    } else {
      embedding_ = add("embedding", normalInit({P, out}, gen, dims.dtype));
    }
  }

  PromptInputs build(const at::Tensor& token_embeds, const at::Tensor& mask,
                     bool training) const override {
    const int64_t B = token_embeds.size(0), P = embedding_.size(0);
    const int64_t L = dims_.layers, G = dims_.kv_heads, D = dims_.head_dim;
    // (P, 2L*G*D) -> (2L, G, P, D): index 2l holds layer l's keys, 2l+1 its values (PEFT's
    // view(B, P, 2L, G, D).permute(2, 0, 3, 1, 4).split(2)).
    const at::Tensor kv = peftEmbeddings().view({P, 2 * L, G, D}).permute({1, 2, 0, 3});
    PromptInputs out;
    for (int64_t l = 0; l < L; ++l) {
      out.prefix_keys.push_back(kv[2 * l].unsqueeze(0).expand({B, G, P, D}));
      out.prefix_values.push_back(kv[2 * l + 1].unsqueeze(0).expand({B, G, P, D}));
    }
    return out;
  }

  at::Tensor peftEmbeddings() const override {
    if (!projection_) return embedding_;
    return at::linear(at::tanh(at::linear(embedding_, transform_[0], transform_[1])),
                      transform_[2], transform_[3]);
  }

  int64_t numVirtualTokens() const override { return embedding_.size(0); }

 private:
  ModelDims dims_;
  bool projection_;
  at::Tensor embedding_;               // (P, 2L*G*D), or (P, G*D) with the projection
  std::vector<at::Tensor> transform_;  // weight, bias pairs of the projection
};

}  // namespace

std::unique_ptr<PromptMethodImpl> makePrefixTuning(const PromptSpec& spec, const ModelDims& dims,
                                                   at::Generator& gen) {
  return std::make_unique<PrefixTuning>(spec, dims, gen);
}

}  // namespace ptune::prompt
