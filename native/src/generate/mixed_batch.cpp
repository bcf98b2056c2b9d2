#include "generate/mixed_batch.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <string>

#include "core/check.h"
#include "generate/generation.h"

namespace ptune::generate {

void checkOptions(const GenerateOptions& options, const char* what) {
  PTUNE_CHECK(options.max_new_tokens >= 0, what, ": max_new_tokens must be >= 0, got ", options.max_new_tokens);
  PTUNE_CHECK(options.greedy || options.temperature > 0, what, ": temperature must be > 0, got ",
              options.temperature);
  PTUNE_CHECK(options.greedy || (options.top_p > 0 && options.top_p <= 1.0), what, ": top_p must lie in (0, 1], got ",
              options.top_p);
  PTUNE_CHECK(options.top_k >= 0, what, ": top_k must be >= 0, got ", options.top_k);
}

namespace {

/// int64 / bool tensors on the model's device.
at::TensorOptions longOpts(const models::Backbone& model) {
  return at::TensorOptions().dtype(at::kLong).device(model.device());
}
at::TensorOptions boolOpts(const models::Backbone& model) {
  return at::TensorOptions().dtype(at::kBool).device(model.device());
}

}  // namespace

RowParts buildRow(const models::Backbone& model, const MixedRow& row, int64_t index) {
  const int64_t T = static_cast<int64_t>(row.ids.size());
  PTUNE_CHECK(T > 0, "row ", index, " of the mixed batch has no tokens");
  const at::Tensor host_ids = at::tensor(row.ids, at::TensorOptions().dtype(at::kLong)).view({1, T});  // (1, T_r)
  prompt::checkTokenIds(model, host_ids);
  const at::Tensor ids = host_ids.to(model.device());
  RowParts parts;
  parts.embeds = model.embed(ids);  // (1, T_r, C)
  if (row.method != nullptr) {
    prompt::PromptInputs built = row.method->build(parts.embeds, at::ones({1, T}, boolOpts(model)), /*training=*/false);
    if (built.input_prompt.defined()) {
      parts.embeds = at::cat({built.input_prompt.to(parts.embeds.scalar_type()), parts.embeds}, 1);
    }
    parts.keys = std::move(built.prefix_keys);
    parts.values = std::move(built.prefix_values);
  }
  const int64_t used = parts.prefix() + parts.embeds.size(1) + row.options.max_new_tokens;
  PTUNE_CHECK(model.maxPositions() == 0 || used <= model.maxPositions(), "row ", index, ": virtual tokens + input + new ",
              "tokens = ", used, " positions exceed the model's ", model.maxPositions(),
              " (config.json max_position_embeddings / n_positions); shorten the prompt or lower max_new_tokens");
  return parts;
}

prompt::PreparedInput prepareMixedInput(const models::Backbone& model, const std::vector<MixedRow>& rows) {
  PTUNE_CHECK(!rows.empty(), "a mixed batch needs at least one row");
  std::vector<RowParts> parts;
  parts.reserve(rows.size());
  for (size_t r = 0; r < rows.size(); ++r) parts.push_back(buildRow(model, rows[r], static_cast<int64_t>(r)));
  return assembleMixedInput(model, parts);
}

prompt::PreparedInput assembleMixedInput(const models::Backbone& model, const std::vector<RowParts>& parts) {
  PTUNE_CHECK(!parts.empty(), "a mixed batch needs at least one row");
  const int64_t B = static_cast<int64_t>(parts.size());
  int64_t W = 0, Pp = 0;
  for (const RowParts& p : parts) {
    W = std::max(W, p.embeds.size(1));
    Pp = std::max(Pp, p.prefix());
  }
  const int64_t C = model.hidden(), L = model.layers(), G = model.kvHeads(), D = model.headDim();

  prompt::PreparedInput in;
  models::BackboneInput& x = in.input;
  x.embeds = at::zeros({B, W, C}, parts[0].embeds.options());  // (B, W, C)
  x.key_mask = at::zeros({B, W}, boolOpts(model));             // (B, W)
  in.cache = model.emptyCache(B);
  if (Pp > 0) {
    const auto kv_opts = at::TensorOptions().dtype(model.dtype()).device(model.device());
    for (int64_t l = 0; l < L; ++l) {
      in.cache.keys[static_cast<size_t>(l)] = at::zeros({B, G, Pp, D}, kv_opts);
      in.cache.values[static_cast<size_t>(l)] = at::zeros({B, G, Pp, D}, kv_opts);
    }
    in.cache.key_mask = at::zeros({B, Pp}, boolOpts(model));  // (B, Pp)
  }
  for (int64_t r = 0; r < B; ++r) {
    const RowParts& p = parts[static_cast<size_t>(r)];
    const int64_t S = p.embeds.size(1);
    x.embeds[r].narrow(0, W - S, S).copy_(p.embeds[0]);
    x.key_mask[r].narrow(0, W - S, S).fill_(true);
    const int64_t P = p.prefix();
    if (P == 0) continue;
    for (int64_t l = 0; l < L; ++l) {
      in.cache.keys[static_cast<size_t>(l)][r].narrow(1, Pp - P, P).copy_(p.keys[static_cast<size_t>(l)][0]);
      in.cache.values[static_cast<size_t>(l)][r].narrow(1, Pp - P, P).copy_(p.values[static_cast<size_t>(l)][0]);
    }
    in.cache.key_mask[r].narrow(0, Pp - P, P).fill_(true);
  }
  x.positions = prompt::positionsFromMask(at::cat({in.cache.key_mask, x.key_mask}, 1)).narrow(1, Pp, W);
  in.input_virtual_tokens = 0;  // differs per row: callers align on the right
  return in;
}

at::Tensor mixedLogits(const models::Backbone& model, const std::vector<MixedRow>& rows) {
  const heads::LmHead& head = model.requireHead();
  prompt::PreparedInput in = prepareMixedInput(model, rows);
  int64_t T = 0;
  for (const MixedRow& row : rows) T = std::max<int64_t>(T, static_cast<int64_t>(row.ids.size()));
  const at::Tensor hidden = model.forward(in.input, &in.cache);  // (B, W, C)
  at::Tensor logits = head.logits(hidden.narrow(1, hidden.size(1) - T, T)).contiguous();  // (B, T, V)
  for (size_t r = 0; r < rows.size(); ++r) {
    const int64_t pad = T - static_cast<int64_t>(rows[r].ids.size());
    if (pad > 0) logits[static_cast<int64_t>(r)].narrow(0, 0, pad).zero_();
  }
  return logits;
}

at::Tensor mixedGenerate(const models::Backbone& model, const std::vector<MixedRow>& rows,
                         const std::vector<int64_t>& eos_ids, std::vector<int64_t>& lengths) {
  PTUNE_CHECK(model.causal(), "generation needs a decoder; this ", models::familyName(model.family()),
              " model is an encoder (use its logits or hidden states)");
  const int64_t B = static_cast<int64_t>(rows.size());
  std::vector<int64_t> limits, pad_ids;
  std::vector<at::Generator> generators;
  bool all_greedy = true;
  for (int64_t r = 0; r < B; ++r) {
    const GenerateOptions& o = rows[static_cast<size_t>(r)].options;
    checkOptions(o, ("row " + std::to_string(r)).c_str());
    limits.push_back(o.max_new_tokens);
    pad_ids.push_back(o.pad_token_id);
    generators.push_back(samplingGenerator(model.device(), o.seed));
    all_greedy = all_greedy && o.greedy;
  }
  prompt::PreparedInput prepared = prepareMixedInput(model, rows);
  const at::Tensor pads = at::tensor(pad_ids, longOpts(model));  // (B)
  // A sampled row draws from its own generator, one draw per step while it runs, as alone.
  const TokenSelector select = [&](const at::Tensor& logits, int64_t step) {  // logits (B, V)
    if (all_greedy) return logits.argmax(-1);
    at::Tensor next = at::empty({B}, longOpts(model));
    for (int64_t r = 0; r < B; ++r) {
      if (step >= limits[static_cast<size_t>(r)]) {
        next[r].fill_(pads[r]);
        continue;
      }
      next.narrow(0, r, 1).copy_(selectNextTokens(logits.narrow(0, r, 1), rows[static_cast<size_t>(r)].options,
                                                  generators[static_cast<size_t>(r)]));
    }
    return next;
  };
  return decode(model, prepared, limits, eos_ids, pads, select, lengths);
}

}  // namespace ptune::generate
