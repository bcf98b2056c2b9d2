// Autoregressive decoding with a KV cache: the (prompted, left-padded) input is encoded once,
// then one position per step. Greedy or sampling with transformers' warpers in its order:
// temperature, top-k, top-p.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <vector>

#include "prompt/prompted_input.h"
#include "ptune/ptune.h"

namespace ptune::models {
class Backbone;
}
namespace ptune::prompt {
class PromptMethodImpl;
}

namespace ptune::generate {

/// A sampling generator on `device` seeded with `seed`: a CPU generator on CPU; elsewhere a copy
/// of the device's default generator (through libtorch's hooks, so a CPU-only build compiles
/// without CUDA and never gets here: loading on a device it lacks fails first), reseeded.
at::Generator samplingGenerator(const at::Device& device, int64_t seed);

/// Picks the next token of each row. logits is (B, V); returns (B) int64.
at::Tensor selectNextTokens(const at::Tensor& logits, const GenerateOptions& options,
                            at::Generator& generator);

/// Picks (B) next tokens from the last position's logits (B, V) at decoding step `step`.
using TokenSelector = std::function<at::Tensor(const at::Tensor& logits, int64_t step)>;

/// The decoding loop behind generate() and mixed batches: runs the prepared (prompted,
/// left-padded) input once, its cache starting from the prefixes, then one position per step.
/// limits (B) caps each row's new tokens (N = their maximum); pads (B) int64 is written after a
/// row finished (EOS or its limit). Returns (B, N) and fills lengths (B), EOS included.
/// Whether every row has finished is read on the host (a synchronisation on a GPU) every
/// `stop_check_every` steps: 0 picks 1 on CPU, where the read costs nothing, and
/// kDeviceStopCheckEvery elsewhere, so the host queues several steps ahead of the device; rows
/// that finish in between decode discarded tokens, and the result is the same.
at::Tensor decode(const models::Backbone& model, prompt::PreparedInput& prepared,
                  const std::vector<int64_t>& limits, const std::vector<int64_t>& eos_ids,
                  const at::Tensor& pads, const TokenSelector& select, std::vector<int64_t>& lengths,
                  int64_t stop_check_every = 0);

/// Steps between decode()'s checks for a finished batch on a GPU.
constexpr int64_t kDeviceStopCheckEvery = 8;

/// method may be null; ids, mask are (B, T) left-padded; returns (B, N) tokens (pad after a
/// row finished) and fills lengths (B) with tokens generated per row, EOS included.
at::Tensor generate(const models::Backbone& model, const prompt::PromptMethodImpl* method,
                    const at::Tensor& ids,
                    const at::Tensor& mask, const std::vector<int64_t>& eos_ids,
                    const GenerateOptions& options, std::vector<int64_t>& lengths);

}  // namespace ptune::generate
