// Dynamic (input-conditioned) prompts: P_x = E + g(m_x), where m_x is the mean of the input
// token embeddings over the attention mask (B, C) and g is  Linear(C -> h), Tanh,
// Linear(h -> P*C).  g's last layer starts at zero, so training starts from the static prompt
// E (initialised like any input prompt) and learns how the input should move it.
#include <ATen/ATen.h>

#include "core/check.h"
#include "prompt/methods.h"

namespace ptune::prompt {
namespace {

class DynamicPrompt final : public PromptMethodImpl {
 public:
  DynamicPrompt(const PromptSpec& spec, const ModelDims& dims, at::Generator& gen) : PromptMethodImpl(dims.device) {
    const int64_t P = spec.num_virtual_tokens, C = dims.hidden, h = spec.encoder_hidden_size;
    PTUNE_CHECK(h > 0, "the dynamic prompt generator width (encoder_hidden_size) must be "
                "positive, got ", h);
    embedding_ = add("embedding", normalInit({P, C}, gen, dims.dtype));
    generator_.push_back(add("generator.0.weight", uniformInit({h, C}, C, gen, dims.dtype)));
    generator_.push_back(add("generator.0.bias", uniformInit({h}, C, gen, dims.dtype)));
    generator_.push_back(add("generator.2.weight", at::zeros({P * C, h}, at::TensorOptions().dtype(dims.dtype))));
    generator_.push_back(add("generator.2.bias", at::zeros({P * C}, at::TensorOptions().dtype(dims.dtype))));
  }

  PromptInputs build(const at::Tensor& token_embeds, const at::Tensor& mask,
                     bool training) const override {
    const int64_t B = token_embeds.size(0), P = embedding_.size(0), C = embedding_.size(1);
    // The generator computes in the parameters' (master) dtype: the embeddings are cast up to it.
    const at::Tensor embeds = token_embeds.to(embedding_.scalar_type());           // (B, T, C)
    const at::Tensor weights = mask.to(embeds.scalar_type()).unsqueeze(-1);       // (B, T, 1)
    const at::Tensor mean = (embeds * weights).sum(1) / weights.sum(1).clamp_min(1.0);  // (B, C)
    const at::Tensor hidden = at::tanh(at::linear(mean, generator_[0], generator_[1]));  // (B, h)
    const at::Tensor offset = at::linear(hidden, generator_[2], generator_[3]).view({B, P, C});
    PromptInputs out;
    out.input_prompt = embedding_.unsqueeze(0) + offset;  // (B, P, C)
    return out;
  }

  at::Tensor peftEmbeddings() const override { return at::Tensor(); }
  int64_t numVirtualTokens() const override { return embedding_.size(0); }

 private:
  at::Tensor embedding_;               // (P, C)
  std::vector<at::Tensor> generator_;  // weight, bias pairs
};

}  // namespace

std::unique_ptr<PromptMethodImpl> makeDynamicPrompt(const PromptSpec& spec, const ModelDims& dims,
                                                    at::Generator& gen) {
  return std::make_unique<DynamicPrompt>(spec, dims, gen);
}

}  // namespace ptune::prompt
