// ptune native façade: the only header JavaCPP parses.
//
// Opaque handles (pimpl classes) and plain structs; no libtorch type appears here,
// so the generated Java bindings stay thin. Every entry point translates C++/c10
// failures into a std::runtime_error with a one-line message a user can act on
// (JavaCPP turns it into a Java RuntimeException, wrapped by io.ptune).
//
// Dimensions: B batch, T text tokens, P virtual (soft-prompt) tokens, C hidden size,
// V vocabulary, N new tokens. Pointers are row-major, contiguous, caller-owned.
#pragma once

#include <cstdint>
#include <memory>

namespace ptune {

/// Llama-family architecture (LlamaForCausalLM; Mistral/Qwen2-style configs map onto it).
/// Java reads config.json and fills every field.
struct LlamaConfig {
  int64_t vocab_size;
  int64_t hidden_size;
  int64_t intermediate_size;
  int64_t num_hidden_layers;
  int64_t num_attention_heads;
  int64_t num_key_value_heads;
  int64_t head_dim;
  int64_t max_position_embeddings;
  double rms_norm_eps;
  double rope_theta;
  bool tie_word_embeddings;
  bool attention_bias;
  bool mlp_bias;
};

/// Learning-rate schedule of the optimizer (Hugging Face's get_*_schedule_with_warmup).
enum class LrSchedule : int32_t { kConstant = 0, kLinear = 1, kCosine = 2 };

/// AdamW + schedule + clipping + accumulation settings of a training run.
struct TrainOptions {
  double learning_rate;
  double weight_decay;
  double adam_beta1;
  double adam_beta2;
  double adam_epsilon;
  double max_grad_norm;   // <= 0 disables clipping
  int64_t grad_accum;     // micro-batches per optimizer step (>= 1)
  int64_t total_steps;    // optimizer steps of the whole run (for the schedule)
  int64_t warmup_steps;
  int32_t schedule;       // LrSchedule
};

/// What one micro-batch did.
struct StepStats {
  double loss;             // mean cross-entropy over this micro-batch's label tokens
  int64_t label_tokens;    // tokens with label != -100 (after the causal shift)
  bool optimizer_stepped;  // true when this micro-batch completed an accumulation cycle
  double grad_norm;        // global norm before clipping (valid when optimizer_stepped)
  double learning_rate;    // rate used by that optimizer step (valid when optimizer_stepped)
  int64_t optimizer_step;  // optimizer steps taken so far
};

/// Summed loss of an evaluation batch (sum over label tokens, so batches can be pooled).
struct EvalStats {
  double loss_sum;
  int64_t label_tokens;
};

/// Decoding settings. greedy ignores the sampling fields.
struct GenerateOptions {
  int64_t max_new_tokens;
  bool greedy;
  double temperature;  // > 0
  int64_t top_k;       // 0 disables
  double top_p;        // 1.0 disables
  int64_t seed;
  int64_t pad_token_id;  // written after a row has finished
};

/// A frozen causal LM loaded from Hugging Face safetensors (fp32/fp16/bf16 on disk;
/// computed in fp32 on CPU).
class CausalLm {
 public:
  /// Loads model.safetensors or the shards of model.safetensors.index.json in model_dir.
  CausalLm(const char* model_dir, const LlamaConfig& config);
  ~CausalLm();
  CausalLm(const CausalLm&) = delete;
  CausalLm& operator=(const CausalLm&) = delete;

  int64_t vocabSize() const;
  int64_t hiddenSize() const;
  int64_t numLayers() const;

  /// Rows of the input embedding table. ids is (n), out is (n, C).
  void embed(const int64_t* ids, int64_t n, float* out) const;

  /// Full-sequence logits. prompt is (P, C) or null when P == 0; ids, mask are (B, T)
  /// (mask 1 = token, 0 = padding, either side); out is (B, P+T, V), virtual positions first.
  void logits(const float* prompt, int64_t P, const int64_t* ids, const int64_t* mask,
              int64_t B, int64_t T, float* out) const;

  /// Autoregressive decoding with a KV cache (the prompt and input are encoded once).
  /// prompt is (P, C) or null; ids, mask are (B, T), left-padded; eos_ids is (E);
  /// out_tokens is (B, N) with N = options.max_new_tokens (pad after a row ends);
  /// out_lengths is (B): tokens generated per row, EOS included.
  void generate(const float* prompt, int64_t P, const int64_t* ids, const int64_t* mask,
                int64_t B, int64_t T, const int64_t* eos_ids, int64_t E,
                const GenerateOptions& options, int64_t* out_tokens, int64_t* out_lengths) const;

 private:
  friend class PromptTrainer;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Prompt tuning: a trainable soft prompt (P, C) in front of a frozen CausalLm.
/// Holds the prompt, its gradient accumulator and the AdamW moments.
class PromptTrainer {
 public:
  /// init_prompt is (P, C). The model must outlive the trainer.
  PromptTrainer(const CausalLm& model, const float* init_prompt, int64_t P,
                const TrainOptions& options);
  ~PromptTrainer();
  PromptTrainer(const PromptTrainer&) = delete;
  PromptTrainer& operator=(const PromptTrainer&) = delete;

  /// One micro-batch in one call: forward, loss over labels != -100, backward into the
  /// prompt only, accumulate; every grad_accum calls also clip, AdamW and schedule.
  /// ids, mask, labels are (B, T) (labels -100 where ignored; right padding expected).
  StepStats trainMicroBatch(const int64_t* ids, const int64_t* mask, const int64_t* labels,
                            int64_t B, int64_t T);

  /// Loss without gradients, same inputs as trainMicroBatch.
  EvalStats evaluate(const int64_t* ids, const int64_t* mask, const int64_t* labels,
                     int64_t B, int64_t T) const;

  int64_t numVirtualTokens() const;
  /// Current prompt; out is (P, C).
  void readPrompt(float* out) const;
  /// Optimizer state for checkpoints: each out is (P, C).
  void readMoments(float* exp_avg, float* exp_avg_sq) const;
  /// Restores a checkpoint: prompt and moments are (P, C); step is optimizer steps taken.
  void restore(const float* prompt, const float* exp_avg, const float* exp_avg_sq, int64_t step);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ptune
