// Shared fixtures of the native test suite: the real stories260K checkpoint in ../shared and
// small helpers. Dimensions follow ptune.h: B batch, T tokens, P virtual tokens, C hidden, V vocab.
#pragma once

#include <cstdint>
#include <exception>
#include <string>
#include <vector>

#include "ptune/ptune.h"

namespace ptune_test {

/// Hugging Face directory of Karpathy's stories260K (config.json + model.safetensors).
inline const std::string kStoriesDir = PTUNE_SHARED_DIR "/models/stories260k";
/// The untouched llama2.c checkpoint of the same model.
inline const std::string kStoriesBin = PTUNE_SHARED_DIR "/models/stories260k/llama2c/stories260K.bin";

/// The values of stories260k/config.json.
inline ptune::LlamaConfig stories260kConfig() {
  ptune::LlamaConfig c{};
  c.vocab_size = 512;
  c.hidden_size = 64;
  c.intermediate_size = 172;
  c.num_hidden_layers = 5;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 4;
  c.head_dim = 8;
  c.max_position_embeddings = 512;
  c.rms_norm_eps = 1e-5;
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
