// A batch whose rows use different prompt methods (or none) in front of one frozen model, run
// as one forward pass (serving many adapters on one model).
//
// Row r has its own tokens (T_r, unpadded), its own input-level virtual tokens (Pin_r: prompt
// tuning, P-tuning, composite, dynamic) and/or its own per-layer prefix (Pp_r: prefix tuning).
// The batch is left-padded as a whole, at the input and in the KV cache:
//
//   input  (B, W, C), W = max_r (Pin_r + T_r):   row r = [pad ... pad | P_r virtual | T_r tokens]
//   cache  per layer (B, G, Pp, D), Pp = max_r Pp_r:  row r = [pad ... pad | its Pp_r prefix slots]
//
// Padding is hidden by the key masks; positions come from the full mask (cumsum - 1), so each
// row sees exactly the keys, values and positions it sees alone and computes the same result
// up to rounding (another batch shape rounds differently). Each row's prompt is built from that
// row alone (B = 1), as it is when the row runs alone; dynamic prompts read its own tokens.
// Dimensions: B rows, W input width, T text width (max T_r), C hidden, V vocabulary, G key/value
// heads, D head dim, N new tokens (max over the rows).
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

#include "models/backbone.h"
#include "prompt/prompt_method.h"
#include "prompt/prompted_input.h"
#include "ptune/ptune.h"

namespace ptune::generate {

/// One row of a mixed batch. The method is borrowed: it must outlive the call.
struct MixedRow {
  const prompt::PromptMethodImpl* method = nullptr;  // null: the bare model
  std::vector<int64_t> ids;                          // (T_r) the row's tokens, no padding
  GenerateOptions options{};                         // decoding settings (generation only)
};

/// What one row's method contributes, built from that row alone (B = 1).
struct RowParts {
  at::Tensor embeds;              // (1, Pin_r + T_r, C): virtual tokens, then the tokens
  std::vector<at::Tensor> keys;   // per layer (1, G, Pp_r, D), or empty
  std::vector<at::Tensor> values; // per layer (1, G, Pp_r, D), or empty
  int64_t prefix() const { return keys.empty() ? 0 : keys[0].size(2); }
};

/// Builds row `index` (named so in errors) alone, after checking that it has tokens, that every
/// id lies in the vocabulary and that prefix + virtual + tokens + max_new_tokens fit in the
/// model's positions.
RowParts buildRow(const models::Backbone& model, const MixedRow& row, int64_t index);

/// The network input and prefix cache of rows built by buildRow (layout above; non-empty).
prompt::PreparedInput assembleMixedInput(const models::Backbone& model, const std::vector<RowParts>& parts);

/// The network input and prefix cache of a mixed batch (layout above). rows must be non-empty,
/// each with at least one token. Checks every id and every row's positions against the model.
prompt::PreparedInput prepareMixedInput(const models::Backbone& model, const std::vector<MixedRow>& rows);

/// Logits (B, T, V) of every row's text positions, right-aligned: row r's T_r positions are the
/// last T_r columns (T = max T_r); the columns before them are 0.
at::Tensor mixedLogits(const models::Backbone& model, const std::vector<MixedRow>& rows);

/// Decodes every row with its own settings: greedy or sampled with its own seed (one generator
/// per row, so a sampled row draws what it draws alone), its own max_new_tokens and pad id.
/// Returns (B, N) tokens, N = max max_new_tokens (each row's pad id after it finished), and fills
/// lengths (B) with the tokens generated per row, EOS included.
at::Tensor mixedGenerate(const models::Backbone& model, const std::vector<MixedRow>& rows,
                         const std::vector<int64_t>& eos_ids, std::vector<int64_t>& lengths);

/// Checks decoding settings (max_new_tokens >= 0, temperature > 0 and top_p in (0, 1] when
/// sampling, top_k >= 0); `what` names the settings in the message, e.g. "row 3".
void checkOptions(const GenerateOptions& options, const char* what);

}  // namespace ptune::generate
