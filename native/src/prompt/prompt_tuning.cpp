// Prompt tuning (Lester et al. 2021) and composite prompts: P = [block_1; ...; block_k] (P, C)
// prepended to the token embeddings. A single block is PEFT's PromptEmbedding ("embedding").
#include <ATen/ATen.h>

#include <numeric>

#include "core/check.h"
#include "prompt/methods.h"

namespace ptune::prompt {
namespace {

class PromptTuning final : public PromptMethodImpl {
 public:
  PromptTuning(const ModelDims& dims, const std::vector<int64_t>& block_sizes, at::Generator& gen)
      : PromptMethodImpl(dims.device) {
    for (size_t i = 0; i < block_sizes.size(); ++i) {
      const std::string name = block_sizes.size() == 1 ? "embedding" : "block." + std::to_string(i);
      blocks_.push_back(add(name, normalInit({block_sizes[i], dims.hidden}, gen, dims.dtype)));
    }
    num_virtual_tokens_ = std::accumulate(block_sizes.begin(), block_sizes.end(), int64_t{0});
  }

  PromptInputs build(const at::Tensor& token_embeds, const at::Tensor& mask,
                     bool training) const override {
    const int64_t B = token_embeds.size(0);
    PromptInputs out;
    out.input_prompt = prompt().unsqueeze(0).expand({B, -1, -1});  // (B, P, C)
    return out;
  }

  at::Tensor peftEmbeddings() const override { return prompt(); }
  int64_t numVirtualTokens() const override { return num_virtual_tokens_; }

 private:
  at::Tensor prompt() const { return blocks_.size() == 1 ? blocks_[0] : at::cat(blocks_, 0); }

  std::vector<at::Tensor> blocks_;  // each (n_i, C)
  int64_t num_virtual_tokens_ = 0;
};

}  // namespace

std::unique_ptr<PromptMethodImpl> makePromptTuning(const PromptSpec& spec, const ModelDims& dims,
                                                   const std::vector<int64_t>& block_sizes,
                                                   at::Generator& gen) {
  std::vector<int64_t> sizes = block_sizes;
  if (sizes.empty()) sizes.push_back(spec.num_virtual_tokens);
  int64_t total = 0;
  for (const int64_t n : sizes) {
    PTUNE_CHECK(n > 0, "every prompt block needs at least one virtual token, got ", n);
    total += n;
  }
  PTUNE_CHECK(total == spec.num_virtual_tokens, "prompt blocks hold ", total,
              " virtual tokens but num_virtual_tokens is ", spec.num_virtual_tokens);
  return std::make_unique<PromptTuning>(dims, sizes, gen);
}

}  // namespace ptune::prompt
