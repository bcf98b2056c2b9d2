#include "prompt/prompted_input.h"

#include <ATen/ATen.h>

#include "core/check.h"

namespace ptune::prompt {

at::Tensor positionsFromMask(const at::Tensor& mask) {
  return (mask.to(at::kLong).cumsum(1) - 1).masked_fill_(mask.logical_not(), 1);
}

void checkTokenIds(const models::Backbone& model, const at::Tensor& ids) {
  const at::Tensor out_of_range = ids.lt(0).logical_or(ids.ge(model.vocab()));
  PTUNE_CHECK(!out_of_range.any().item<bool>(), "token id outside the vocabulary [0, ", model.vocab(),
              ") in the input; was it tokenised for another model?");
}

PreparedInput prepareInput(const models::Backbone& model, const PromptMethodImpl* method,
                           const at::Tensor& ids, const at::Tensor& mask, bool training,
                           const at::Tensor& token_types) {
  const int64_t B = ids.size(0);
  const at::Tensor token_mask = mask.ne(0);
  PTUNE_CHECK(token_mask.any(1).all().item<bool>(),
              "a row of the batch has no tokens (its attention mask is all zeros)");
  checkTokenIds(model, ids);
  PreparedInput in;
  models::BackboneInput& x = in.input;
  x.embeds = model.embed(ids);  // (B, T, C)
  x.key_mask = token_mask;
  x.token_types = token_types;
  in.cache = model.emptyCache(B);
  if (method != nullptr) {
    PromptInputs parts = method->build(x.embeds, token_mask, training);
    if (parts.input_prompt.defined()) {
      const int64_t P = parts.input_prompt.size(1);
      x.embeds = at::cat({parts.input_prompt.to(x.embeds.scalar_type()), x.embeds}, 1);
      x.key_mask = at::cat({at::ones({B, P}, token_mask.options()), token_mask}, 1);
      if (token_types.defined()) {
        x.token_types = at::cat({at::zeros({B, P}, token_types.options()), token_types}, 1);
      }
      in.input_virtual_tokens = P;
    }
    if (!parts.prefix_keys.empty()) {
      const int64_t P = parts.prefix_keys[0].size(2);
      // Master-dtype prefixes enter the cache in the model's compute dtype (a no-op in fp32).
      for (auto& k : parts.prefix_keys) k = k.to(model.dtype());
      for (auto& v : parts.prefix_values) v = v.to(model.dtype());
      in.cache.keys = std::move(parts.prefix_keys);
      in.cache.values = std::move(parts.prefix_values);
      in.cache.key_mask = at::ones({B, P}, token_mask.options());
    }
  }
  const int64_t past = in.cache.length();
  x.positions = positionsFromMask(at::cat({in.cache.key_mask, x.key_mask}, 1)).narrow(1, past, x.key_mask.size(1));
  const int64_t total = past + x.key_mask.size(1);
  PTUNE_CHECK(model.maxPositions() == 0 || total <= model.maxPositions(), "virtual tokens + input = ", total,
              " positions exceed the model's ", model.maxPositions(),
              " (config.json max_position_embeddings / n_positions); shorten the input (--max-length)");
  return in;
}

at::Tensor padLabels(const at::Tensor& labels, int64_t P) {
  if (P == 0) return labels;
  return at::cat({at::full({labels.size(0), P}, kIgnoreIndex, labels.options()), labels}, 1);
}

}  // namespace ptune::prompt
