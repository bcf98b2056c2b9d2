#include "generate/generation.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>

#include <algorithm>
#include <limits>
#include <mutex>

#include "core/check.h"
#include "models/backbone.h"
#include "prompt/prompted_input.h"

namespace ptune::generate {

at::Generator samplingGenerator(const at::Device& device, int64_t seed) {
  if (device.is_cpu()) return at::make_generator<at::CPUGeneratorImpl>(seed);
  at::Generator global = at::globalContext().defaultGenerator(device);
  at::Generator gen;
  {
    std::lock_guard<std::mutex> lock(global.mutex());
    gen = global.clone();  // our own generator: the process-wide one is never drawn from
  }
  gen.set_current_seed(static_cast<uint64_t>(seed));
  return gen;
}

at::Tensor selectNextTokens(const at::Tensor& logits, const GenerateOptions& options,
                            at::Generator& generator) {
  if (options.greedy) return logits.argmax(-1);
  const double neg_inf = -std::numeric_limits<double>::infinity();
  at::Tensor scores = logits.to(at::kFloat) / options.temperature;
  if (options.top_k > 0) {
    const int64_t k = std::min<int64_t>(options.top_k, scores.size(-1));
    const at::Tensor kth = std::get<0>(scores.topk(k, -1)).narrow(-1, k - 1, 1);  // (B, 1)
    scores = scores.masked_fill(scores.lt(kth), neg_inf);
  }
  if (options.top_p < 1.0) {
    // Drop the smallest tokens whose cumulative probability stays within 1 - top_p,
    // always keeping the most likely one.
    const auto sorted = scores.sort(-1, /*descending=*/false);
    const at::Tensor& sorted_scores = std::get<0>(sorted);
    const at::Tensor& sorted_index = std::get<1>(sorted);
    at::Tensor remove = sorted_scores.softmax(-1).cumsum(-1).le(1.0 - options.top_p);
    remove.narrow(-1, remove.size(-1) - 1, 1).fill_(false);
    scores = scores.masked_fill(remove.scatter(-1, sorted_index, remove), neg_inf);
  }
  return at::multinomial(scores.softmax(-1), 1, /*replacement=*/false, generator).squeeze(1);
}

at::Tensor generate(const models::Backbone& model, const prompt::PromptMethodImpl* method,
                    const at::Tensor& ids,
                    const at::Tensor& mask, const std::vector<int64_t>& eos_ids,
                    const GenerateOptions& options, std::vector<int64_t>& lengths) {
  PTUNE_CHECK(options.max_new_tokens >= 0, "max_new_tokens must be >= 0");
  PTUNE_CHECK(options.greedy || options.temperature > 0, "temperature must be > 0");
  PTUNE_CHECK(options.greedy || (options.top_p > 0 && options.top_p <= 1.0),
              "top_p must lie in (0, 1]");
  PTUNE_CHECK(options.top_k >= 0, "top_k must be >= 0");
  PTUNE_CHECK(model.causal(), "generation needs a decoder; this ", models::familyName(model.family()),
              " model is an encoder (use its logits or hidden states)");
  const int64_t B = ids.size(0), N = options.max_new_tokens;
  const int64_t virtual_tokens = method != nullptr ? method->numVirtualTokens() : 0;
  const int64_t total = ids.size(1) + virtual_tokens + N;
  PTUNE_CHECK(model.maxPositions() == 0 || total <= model.maxPositions(), "prompt + input + new tokens = ",
              total, " positions exceed the model's ", model.maxPositions(),
              " (config.json max_position_embeddings / n_positions); lower --max-new-tokens");
  if (N == 0) {
    lengths.assign(static_cast<size_t>(B), 0);
    return at::full({B, N}, options.pad_token_id, at::TensorOptions().dtype(at::kLong).device(model.device()));
  }
  at::Generator generator = samplingGenerator(model.device(), options.seed);
  prompt::PreparedInput prepared = prompt::prepareInput(model, method, ids, mask, /*training=*/false);
  const at::Tensor pads =
      at::full({B}, options.pad_token_id, at::TensorOptions().dtype(at::kLong).device(model.device()));
  return decode(model, prepared, std::vector<int64_t>(static_cast<size_t>(B), N), eos_ids, pads,
                [&](const at::Tensor& logits, int64_t) { return selectNextTokens(logits, options, generator); },
                lengths);
}

at::Tensor decode(const models::Backbone& model, prompt::PreparedInput& prepared,
                  const std::vector<int64_t>& limits, const std::vector<int64_t>& eos_ids,
                  const at::Tensor& pads, const TokenSelector& select, std::vector<int64_t>& lengths,
                  int64_t stop_check_every) {
  const int64_t B = prepared.input.embeds.size(0);
  PTUNE_CHECK(static_cast<int64_t>(limits.size()) == B && pads.numel() == B, "decode: ", limits.size(),
              " limits and ", pads.numel(), " pad ids for ", B, " rows");
  const int64_t N = limits.empty() ? 0 : *std::max_element(limits.begin(), limits.end());
  const auto long_opts = at::TensorOptions().dtype(at::kLong).device(model.device());
  at::Tensor out = pads.view({B, 1}).expand({B, N}).contiguous();  // (B, N)
  lengths.assign(static_cast<size_t>(B), 0);
  if (N == 0) return out;

  const at::Tensor eos = at::tensor(eos_ids, long_opts);
  const at::Tensor limit = at::tensor(limits, long_opts);  // (B)
  at::Tensor finished = limit.le(0);                        // (B) bool: a row of 0 new tokens is done
  at::Tensor new_tokens = at::zeros({B}, long_opts);        // (B) lengths, on the device until the end
  if (stop_check_every <= 0) stop_check_every = model.device().is_cpu() ? 1 : kDeviceStopCheckEvery;

  // The cache starts from the prefix (if any): it is never recomputed.
  const heads::LmHead& head = model.requireHead();
  models::KvCache& cache = prepared.cache;
  at::Tensor hidden = model.forward(prepared.input, &cache);
  cache.reserve(cache.length() + N);  // new keys/values are then written in place, not concatenated
  at::Tensor next_position = prepared.input.positions.select(1, -1) + 1;  // (B)
  at::Tensor logits = head.logits(hidden.select(1, -1));  // (B, V)

  for (int64_t step = 0; step < N; ++step) {
    at::Tensor next = select(logits, step);  // (B)
    next = at::where(finished, pads, next);
    out.select(1, step).copy_(next);
    new_tokens.masked_fill_(finished.logical_not(), step + 1);
    if (eos.numel() > 0) finished = finished.logical_or(at::isin(next, eos));
    finished = finished.logical_or(limit.le(step + 1));
    if (step + 1 == N || ((step + 1) % stop_check_every == 0 && finished.all().item<bool>())) break;
    // Finished rows keep decoding token 0 (pad_token_id need not be a vocabulary id) whose
    // result is discarded; the batch stays whole.
    models::BackboneInput next_input;
    next_input.embeds = model.embed(next.masked_fill(finished, 0).unsqueeze(1));  // (B, 1, C)
    next_input.positions = next_position.unsqueeze(1);
    next_input.key_mask = at::ones({B, 1}, at::TensorOptions().dtype(at::kBool).device(model.device()));
    hidden = model.forward(next_input, &cache);
    next_position = next_position + 1;
    logits = head.logits(hidden.select(1, -1));
  }
  const at::Tensor lengths_host = new_tokens.to(at::kCPU);
  for (int64_t b = 0; b < B; ++b) lengths[static_cast<size_t>(b)] = lengths_host.data_ptr<int64_t>()[b];
  return out;
}

}  // namespace ptune::generate
