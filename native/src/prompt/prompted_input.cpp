#include "prompt/prompted_input.h"

#include <ATen/ATen.h>

#include "core/check.h"
#include "models/llama.h"

namespace ptune::prompt {

at::Tensor positionsFromMask(const at::Tensor& mask) {
  return (mask.to(at::kLong).cumsum(1) - 1).masked_fill_(mask.logical_not(), 1);
}

PreparedInput prepareInput(const models::Llama& model, const PromptMethodImpl* method,
                           const at::Tensor& ids, const at::Tensor& mask, bool training) {
  const int64_t B = ids.size(0);
  const at::Tensor token_mask = mask.ne(0);
  PTUNE_CHECK(token_mask.any(1).all().item<bool>(),
              "a row of the batch has no tokens (its attention mask is all zeros)");
  PreparedInput in;
  in.embeds = model.embed(ids);  // (B, T, C)
  in.key_mask = token_mask;
  in.cache = model.emptyCache(B);
  if (method != nullptr) {
    PromptInputs parts = method->build(in.embeds, token_mask, training);
    if (parts.input_prompt.defined()) {
      const int64_t P = parts.input_prompt.size(1);
      in.embeds = at::cat({parts.input_prompt.to(in.embeds.scalar_type()), in.embeds}, 1);
      in.key_mask = at::cat({at::ones({B, P}, token_mask.options()), token_mask}, 1);
      in.input_virtual_tokens = P;
    }
    if (!parts.prefix_keys.empty()) {
      const int64_t P = parts.prefix_keys[0].size(2);
      in.cache.keys = std::move(parts.prefix_keys);
      in.cache.values = std::move(parts.prefix_values);
      in.cache.key_mask = at::ones({B, P}, token_mask.options());
    }
  }
  const int64_t past = in.cache.length();
  in.positions = positionsFromMask(at::cat({in.cache.key_mask, in.key_mask}, 1))
                     .narrow(1, past, in.key_mask.size(1));
  const int64_t total = past + in.key_mask.size(1);
  PTUNE_CHECK(total <= model.config().max_position_embeddings, "virtual tokens + input = ",
              total, " positions exceed max_position_embeddings ",
              model.config().max_position_embeddings, "; shorten the input (--max-length)");
  return in;
}

at::Tensor padLabels(const at::Tensor& labels, int64_t P) {
  if (P == 0) return labels;
  return at::cat({at::full({labels.size(0), P}, kIgnoreIndex, labels.options()), labels}, 1);
}

}  // namespace ptune::prompt
