#include "prompt/soft_prompt.h"

#include <ATen/ATen.h>

#include "core/check.h"
#include "models/llama.h"

namespace ptune::prompt {

at::Tensor positionsFromMask(const at::Tensor& mask) {
  const at::Tensor as_long = mask.to(at::kLong);
  return (as_long.cumsum(1) - 1).masked_fill_(mask.logical_not(), 1);
}

PromptedInput prependPrompt(const models::Llama& model, const at::Tensor& prompt,
                            const at::Tensor& ids, const at::Tensor& mask) {
  const int64_t B = ids.size(0);
  const at::Tensor token_mask = mask.ne(0);
  PTUNE_CHECK(token_mask.any(1).all().item<bool>(),
              "a row of the batch has no tokens (its attention mask is all zeros)");
  at::Tensor embeds = model.embed(ids);  // (B, T, C)
  at::Tensor key_mask = token_mask;
  if (prompt.defined() && prompt.size(0) > 0) {
    const int64_t P = prompt.size(0);
    PTUNE_CHECK(prompt.size(1) == model.config().hidden_size, "soft prompt width ",
                prompt.size(1), " does not match the model hidden size ",
                model.config().hidden_size);
    const at::Tensor virtual_tokens = prompt.to(embeds.scalar_type()).unsqueeze(0).expand({B, P, -1});
    embeds = at::cat({virtual_tokens, embeds}, 1);
    key_mask = at::cat({at::ones({B, P}, token_mask.options()), token_mask}, 1);
  }
  return {embeds, key_mask, positionsFromMask(key_mask)};
}

at::Tensor padLabels(const at::Tensor& labels, int64_t P) {
  if (P == 0) return labels;
  return at::cat({at::full({labels.size(0), P}, kIgnoreIndex, labels.options()), labels}, 1);
}

}  // namespace ptune::prompt
