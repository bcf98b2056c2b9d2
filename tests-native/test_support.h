// Shared fixtures of the native test suite: the real stories260K checkpoint in ../shared and
// small helpers. Dimensions follow ptune.h: B batch, T tokens, P virtual tokens, C hidden, V vocab.
#pragma once

#include <cstdint>
#include <algorithm>
#include <exception>
#include <string>
#include <vector>

#include "ptune/ptune.h"

namespace ptune_test {

/// Hugging Face directory of Karpathy's stories260K (config.json + model.safetensors).
inline const std::string kStoriesDir = PTUNE_SHARED_DIR "/models/stories260k";
/// The untouched llama2.c checkpoint of the same model.
inline const std::string kStoriesBin = PTUNE_SHARED_DIR "/models/stories260k/llama2c/stories260K.bin";

/// The values of stories260k/config.json (a Llama).
inline ptune::ModelSpec stories260kConfig() {
  ptune::ModelSpec c{};
  c.family = static_cast<int32_t>(ptune::ModelFamily::kLlama);
  c.activation = static_cast<int32_t>(ptune::Activation::kSilu);
  c.vocab_size = 512;
  c.hidden_size = 64;
  c.intermediate_size = 172;
  c.num_hidden_layers = 5;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 4;
  c.head_dim = 8;
  c.max_position_embeddings = 512;
  c.norm_eps = 1e-5;
  c.rope_theta = 10000.0;
  c.tie_word_embeddings = true;
  c.attention_bias = false;
  c.mlp_bias = false;
  return c;
}

constexpr int64_t kBos = 1;
constexpr int64_t kEos = 2;

/// "Once upon a time, there was a little girl named Lily." without BOS (models/README.md).
inline const std::vector<int64_t> kLilyIds = {403, 407, 261, 378, 432, 383, 286, 261,
                                              376, 298, 315, 421, 395, 317, 426};

/// BOS followed by kLilyIds.
inline std::vector<int64_t> lilyWithBos() {
  std::vector<int64_t> ids = {kBos};
  ids.insert(ids.end(), kLilyIds.begin(), kLilyIds.end());
  return ids;
}

// "The cat sat on a green box and sang to the moon every night." (BOS first, tok512.bin)
inline const std::vector<int64_t> kCatIds = {1, 291, 280, 294, 262, 294, 353, 261, 298, 276, 302, 268, 414, 444, 269,
                                             296, 416, 428, 267, 265, 284, 414, 289, 344, 363, 297, 333, 415, 413, 426};
// "Tom had a blue kite. He flew it high in the sky with his dad." (BOS first)
inline const std::vector<int64_t> kTomIds = {1, 274, 287, 381, 261, 268, 421, 425, 411, 409, 275, 411, 426, 346, 272, 305,
                                             424, 312, 270, 333, 415, 322, 265, 262, 433, 422, 335, 345, 279, 380, 426};

/// A PromptSpec with every field set (unused ones zero).
inline ptune::PromptSpec makeSpec(ptune::PromptMethod method, int64_t P, int64_t hidden = 0,
                                  ptune::PromptEncoderType encoder = ptune::PromptEncoderType::kMlp,
                                  int64_t encoder_layers = 0, bool projection = false,
                                  int64_t seed = 0) {
  ptune::PromptSpec s{};
  s.method = static_cast<int32_t>(method);
  s.num_virtual_tokens = P;
  s.encoder_type = static_cast<int32_t>(encoder);
  s.encoder_hidden_size = hidden;
  s.encoder_num_layers = encoder_layers;
  s.encoder_dropout = 0.0;
  s.prefix_projection = projection;
  s.seed = seed;
  return s;
}

/// A right-padded micro-batch; labels = ids on real tokens (BOS ignored), -100 on padding.
struct Batch {
  std::vector<int64_t> ids, mask, labels;  // each (B, T)
  int64_t B = 0, T = 0;
};

inline Batch makeBatch(const std::vector<std::vector<int64_t>>& rows) {
  Batch b;
  b.B = static_cast<int64_t>(rows.size());
  for (const auto& r : rows) b.T = std::max<int64_t>(b.T, static_cast<int64_t>(r.size()));
  for (const auto& r : rows) {
    for (int64_t t = 0; t < b.T; ++t) {
      const bool real = t < static_cast<int64_t>(r.size());
      b.ids.push_back(real ? r[static_cast<size_t>(t)] : 0);
      b.mask.push_back(real ? 1 : 0);
      b.labels.push_back(real && t > 0 ? r[static_cast<size_t>(t)] : -100);
    }
  }
  return b;
}

/// AdamW without weight decay or clipping, constant schedule.
inline ptune::TrainOptions options(double lr, int64_t grad_accum, int64_t total_steps) {
  ptune::TrainOptions o{};
  o.learning_rate = lr;
  o.weight_decay = 0.0;
  o.adam_beta1 = 0.9;
  o.adam_beta2 = 0.999;
  o.adam_epsilon = 1e-8;
  o.max_grad_norm = 0.0;
  o.grad_accum = grad_accum;
  o.total_steps = total_steps;
  o.warmup_steps = 0;
  o.schedule = static_cast<int32_t>(ptune::LrSchedule::kConstant);
  o.loss_averaging = static_cast<int32_t>(ptune::LossAveraging::kTokens);
  return o;
}

/// The what() of the E that body throws, or "<no exception>" (other types propagate).
template <typename E = std::exception, typename Body>
std::string thrownMessage(Body&& body) {
  try {
    body();
  } catch (const E& e) {
    return e.what();
  }
  return "<no exception>";
}

}  // namespace ptune_test
