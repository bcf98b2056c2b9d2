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
#include <string>

namespace ptune {

/// Model families, one file each under native/src/models/.
enum class ModelFamily : int32_t {
  kLlama = 0,  // LlamaForCausalLM (Mistral, Qwen2): RMSNorm, rotary, GQA, SwiGLU
  kGpt2 = 1,   // GPT2LMHeadModel: learned positions, LayerNorm, Conv1D weights, tied head
  kBloom = 2,  // BloomForCausalLM: ALiBi, fused interleaved QKV, embedding LayerNorm, tied head
  kBert = 3    // BertModel / BertForMaskedLM: bidirectional, post-LN, MLM head when present
};

/// Activation of the MLP (and of BERT's MLM head transform).
enum class Activation : int32_t {
  kSilu = 0,       // Llama's SwiGLU gate
  kGeluExact = 1,  // erf GELU (BERT "gelu")
  kGeluTanh = 2,   // tanh approximation (GPT-2 "gelu_new", "gelu_pytorch_tanh")
  kGeluBloom = 3,  // BLOOM's tanh approximation with its truncated constant
  kRelu = 4
};

/// Rotary frequency scaling (transformers' rope_type).
enum class RopeType : int32_t { kRopeDefault = 0, kRopeLinear = 1, kRopeLlama3 = 2 };

/// The architecture of a model, family-tagged and flat. Java reads config.json (or inspects an
/// ONNX export) and fills every field; fields another family does not use are ignored.
struct ModelSpec {
  int32_t family;                   // ModelFamily
  int64_t vocab_size;               // V
  int64_t hidden_size;              // C
  int64_t intermediate_size;        // MLP width
  int64_t num_hidden_layers;
  int64_t num_attention_heads;      // H
  int64_t num_key_value_heads;      // G (= H but for grouped-query Llama-family models)
  int64_t head_dim;                 // D
  int64_t max_position_embeddings;  // 0: no limit (ALiBi)
  double norm_eps;                  // RMSNorm / LayerNorm epsilon
  int32_t activation;               // Activation
  bool tie_word_embeddings;         // the LM head reuses the embedding table
  // Llama family
  double rope_theta;
  int32_t rope_type;                   // RopeType
  double rope_factor;                  // kRopeLinear, kRopeLlama3: frequencies divided by it
  double rope_low_freq_factor;         // kRopeLlama3
  double rope_high_freq_factor;        // kRopeLlama3
  int64_t rope_original_max_position;  // kRopeLlama3: original_max_position_embeddings
  bool attention_bias;
  bool mlp_bias;
  int64_t sliding_window;      // > 0: layers from first_window_layer on see only the last
  int64_t first_window_layer;  // sliding_window keys (Mistral: all layers; Qwen2: from max_window_layers)
  // BERT family
  int64_t type_vocab_size;
};

/// The spec of a BERT-family encoder exported to ONNX (e.g. a sentence-embedding model), read
/// from its graph: sizes from the weights, heads from the attention's reshapes, epsilon from the
/// LayerNorms, the activation from the MLP. Throws naming what is missing for a graph ptune does
/// not recognise.
ModelSpec describeOnnxEncoder(const char* onnx_path);

/// Where a model computes (issue 12). CUDA needs a CUDA build of libtorch and a visible GPU.
enum class DeviceType : int32_t { kCpu = 0, kCuda = 1 };

/// The compute dtype of the frozen model: its weights are converted once at load, and its
/// activations follow. Trainable parameters (prompts, encoders, classifier heads), their AdamW
/// moments and the losses stay fp32 whatever this is.
enum class DType : int32_t {
  kFp32 = 0,
  kBf16 = 1,
  kFp16 = 2  // CUDA only (libtorch's CPU kernels lack fp16 matmuls); training uses a dynamic loss scaler
};

/// How a model is loaded: device and compute dtype. {kCpu, 0, kFp32} is what Model(path, spec) does.
struct LoadOptions {
  int32_t device_type;   // DeviceType
  int32_t device_index;  // >= 0; the GPU ordinal for kCuda (0 for kCpu)
  int32_t dtype;         // DType
};

/// GPUs libtorch can use in this process: 0 on a CPU-only build or a machine without a GPU.
int32_t cudaDeviceCount();

/// Learning-rate schedule of the optimizer (Hugging Face's get_*_schedule_with_warmup).
enum class LrSchedule : int32_t { kConstant = 0, kLinear = 1, kCosine = 2 };

/// How gradient accumulation weighs micro-batches. kTokens: the optimizer step sees the mean loss
/// over every label token of its micro-batches (transformers' Trainer, num_items_in_batch);
/// kMicroBatches: the mean of the micro-batches' mean losses (the plain PEFT loop, loss / accum).
enum class LossAveraging : int32_t { kTokens = 0, kMicroBatches = 1 };

/// The loss of a classification task (ignored by the causal-LM objective).
enum class ClassLossKind : int32_t {
  kCrossEntropy = 0,  // with optional label smoothing and class weights (torch's cross_entropy)
  kFocal = 1          // -alpha_y (1 - p_y)^gamma log p_y (Lin et al. 2017), softmax over the classes
};

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
  int32_t loss_averaging; // LossAveraging (classification: over examples, weighted by class weights)
  int32_t class_loss;     // ClassLossKind (classification only)
  double focal_gamma;     // kFocal: >= 0
  double label_smoothing; // kCrossEntropy: in [0, 1)
};

/// What one micro-batch did.
struct StepStats {
  double loss;             // mean cross-entropy over this micro-batch's label tokens
  int64_t label_tokens;    // tokens with label != -100 (after the causal shift)
  bool optimizer_stepped;  // true when this micro-batch completed an accumulation cycle
  double grad_norm;        // global norm before clipping (valid when optimizer_stepped)
  double learning_rate;    // rate used by that optimizer step (valid when optimizer_stepped)
  int64_t optimizer_step;  // optimizer steps taken so far
  bool cycle_dropped;      // a non-finite loss or gradient norm dropped this accumulation cycle:
                           // its gradients are discarded and the parameters and moments unchanged
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

/// Threads of libtorch's intra-op pool (elementwise ops, reductions, attention), process-wide
/// like torch.set_num_threads. The BLAS library keeps its own threads.
int32_t intraOpThreads();
void setIntraOpThreads(int32_t threads);  // threads >= 1

/// Prompt-learning methods. Composite prompts are prompt tuning with several blocks.
enum class PromptMethod : int32_t {
  kPromptTuning = 0,  // P (P, C) prepended to the token embeddings (Lester et al. 2021)
  kPTuning = 1,       // encoder(E) (P, C) prepended; encoder MLP or bi-LSTM+MLP (Liu et al. 2021)
  kPrefixTuning = 2,  // per-layer key/value prefixes, optionally through an MLP (Li & Liang 2021)
  kDynamic = 3        // g(mean of the input embeddings) -> (P, C) per example
};

/// Reparameterisation of P-tuning (PEFT's encoder_reparameterization_type).
enum class PromptEncoderType : int32_t { kMlp = 0, kLstm = 1 };

/// Shape of a prompt method. Fields a method does not use are ignored.
struct PromptSpec {
  int32_t method;               // PromptMethod
  int64_t num_virtual_tokens;   // P (> 0); for several blocks, their sum
  int32_t encoder_type;         // P-tuning: PromptEncoderType
  int64_t encoder_hidden_size;  // P-tuning encoder / prefix projection / dynamic generator width
  int64_t encoder_num_layers;   // P-tuning LSTM layers
  double encoder_dropout;       // P-tuning LSTM dropout between layers (training only)
  bool prefix_projection;       // prefix tuning: reparameterise the prefix through an MLP
  int64_t seed;                 // random init of encoder / generator weights
};

/// Classification heads (see Classifier).
enum class ClassifierHead : int32_t {
  kLinearHead = 0,         // a trainable (K, C) layer on a pooled vector (transformers' *ForSequenceClassification)
  kVerbalizerHead = 1,     // PET: label words' log-probabilities at a slot, OpenPrompt's ManualVerbalizer
  kSoftVerbalizerHead = 2  // WARP: trainable class vectors scored against the slot's hidden state
};

/// What the linear head reads.
enum class Pooling : int32_t {
  kPoolCls = 0,        // position 0 of what the model sees (the first virtual token behind an input-level
                   // prompt, else [CLS]), through BERT's pooler when present: transformers + PEFT
  kPoolFirstText = 1,  // the first text token ([CLS]), through BERT's pooler when present: P-tuning v2
  kPoolMean = 2,       // the mean over the text tokens
  kPoolLast = 3        // the last text token (decoders)
};

/// How a label word of several tokens is scored (OpenPrompt's multi_token_handler).
enum class MultiToken : int32_t { kFirstPiece = 0, kMeanOfPieces = 1, kMaxOfPieces = 2 };

/// Shape of a classification head.
struct ClassifierSpec {
  int32_t head;         // ClassifierHead
  int64_t num_classes;  // K >= 2
  int32_t pooling;      // Pooling (kLinearHead)
  bool head_bias;       // kLinearHead: parameters "classifier.weight" + "classifier.bias" (BERT's naming), else
                        // "score.weight" (decoders' *ForSequenceClassification: no bias)
  int32_t multi_token;  // MultiToken (verbalizers)
  int64_t seed;         // initialisation of the linear head
};

class Model;
class MixedBatch;

/// The state of one prompt method in front of one model: named fp32 parameters, each
/// trainable or frozen with its own learning rate. Names follow PEFT's modules where PEFT has
/// them ("embedding", "mlp_head.0.weight", "lstm_head.weight_ih_l0", "transform.0.weight",
/// "model.layers.4.mlp.up_proj.weight", ...). Created with PyTorch's default initialisation.
class PromptModel {
 public:
  /// block_sizes (num_blocks) splits prompt tuning's P rows into named blocks "block.<i>" (a
  /// composite prompt); null / 0 blocks means one block named "embedding".
  PromptModel(const Model& model, const PromptSpec& spec, const int64_t* block_sizes,
              int64_t num_blocks);
  ~PromptModel();
  PromptModel(const PromptModel&) = delete;
  PromptModel& operator=(const PromptModel&) = delete;

  int32_t method() const;
  int64_t numVirtualTokens() const;
  int64_t numParameters() const;
  std::string parameterName(int64_t index) const;
  /// dims (up to 4) receives the shape; returns the rank.
  int64_t parameterShape(const char* name, int64_t* dims) const;
  int64_t parameterNumel(const char* name) const;
  /// out and values are the parameter's numel floats, row-major.
  void readParameter(const char* name, float* out) const;
  void writeParameter(const char* name, const float* values);
  /// learning_rate 0 = the trainer's base rate; scaled by the schedule either way.
  void setTrainable(const char* name, bool trainable, double learning_rate);
  bool isTrainable(const char* name) const;
  int64_t trainableParameterCount() const;

  /// Two-stage training: the top `layers` transformer layers become trainable copies
  /// (parameters named as in the checkpoint), at learning_rate. The base files are untouched.
  void unfreezeTopLayers(int64_t layers, double learning_rate);

  /// What PEFT saves as `prompt_embeddings`: prompt / P-tuning (P, C) encoder output; prefix
  /// (P, 2 * layers * kv_dim) after the projection. Not defined for dynamic prompts.
  int64_t peftEmbeddingsNumel() const;
  void exportPeftEmbeddings(float* out) const;

 private:
  friend class Model;
  friend class Classifier;
  friend class PromptTrainer;
  friend class MixedBatch;
  friend class DecodeSession;
  struct Impl;
  std::shared_ptr<Impl> impl_;  // shared: prompts keep their model alive, trainers their prompt
};

/// A frozen model of any family, loaded from a Hugging Face folder (model.safetensors or its
/// shards; fp32/fp16/bf16 on disk) and computed on the device and in the dtype of its
/// LoadOptions (fp32 on CPU by default). Inputs and outputs cross as host memory either way.
class Model {
 public:
  /// Loads model.safetensors or the shards of model.safetensors.index.json in the folder `path`,
  /// or the initializers of the BERT-family ONNX export `path` (a file ending in .onnx), in fp32
  /// on CPU.
  Model(const char* path, const ModelSpec& spec);
  /// The same on options.device_type / device_index in options.dtype: the weights are converted
  /// and moved once, here. Throws with one line naming --device / --dtype when the device does
  /// not exist (e.g. CUDA on a CPU-only build) or the dtype is not supported there.
  Model(const char* path, const ModelSpec& spec, const LoadOptions& options);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  int32_t family() const;  // ModelFamily
  /// Decoders attend causally and can generate; encoders (BERT) attend both ways.
  bool isCausal() const;
  /// Whether logits() exists: a decoder's LM head, or an encoder's MLM head.
  bool hasLmHead() const;
  int64_t vocabSize() const;
  int64_t hiddenSize() const;
  int64_t numLayers() const;
  int64_t numKeyValueHeads() const;
  int64_t headDim() const;
  /// The LoadOptions it was loaded with.
  LoadOptions loadOptions() const;

  /// Rows of the input embedding table (the space prompts live in). ids is (n), out is (n, C).
  void embed(const int64_t* ids, int64_t n, float* out) const;

  /// Full-sequence logits of the LM (or MLM) head. prompt may be null (no prompt); ids, mask
  /// are (B, T) (mask 1 = token, 0 = padding, either side); token_types is (B, T) or null
  /// (all 0; BERT's segment ids, ignored by decoders); out is (B, V_in + T, V) where V_in is the
  /// number of input-level virtual tokens (0 for prefix tuning), virtual positions first.
  void logits(const PromptModel* prompt, const int64_t* ids, const int64_t* mask,
              const int64_t* token_types, int64_t B, int64_t T, float* out) const;
  /// Final hidden states (last_hidden_state), same inputs as logits(); out is (B, V_in + T, C).
  void hiddenStates(const PromptModel* prompt, const int64_t* ids, const int64_t* mask,
                    const int64_t* token_types, int64_t B, int64_t T, float* out) const;
  /// V_in of logits() for this prompt (0 when prompt is null).
  int64_t inputVirtualTokens(const PromptModel* prompt) const;

  /// Autoregressive decoding with a KV cache (decoders only): prompt (or prefix) and input are
  /// encoded once.
  /// ids, mask are (B, T), left-padded; eos_ids is (E); out_tokens is (B, N) with
  /// N = options.max_new_tokens (pad after a row ends); out_lengths is (B): tokens generated
  /// per row, EOS included.
  void generate(const PromptModel* prompt, const int64_t* ids, const int64_t* mask, int64_t B,
                int64_t T, const int64_t* eos_ids, int64_t E, const GenerateOptions& options,
                int64_t* out_tokens, int64_t* out_lengths) const;

 private:
  friend class PromptModel;
  friend class Classifier;
  friend class PromptTrainer;
  friend class MixedBatch;
  friend class DecodeSession;
  struct Impl;
  std::shared_ptr<Impl> impl_;  // shared: prompts keep their model alive, trainers their prompt
};

/// A batch whose rows use different prompts (any method, or none) in front of one Model, run as
/// one forward pass (serving many adapters on one model): each row's input-level virtual tokens
/// go before its tokens, each row's prefix fills its own slots of the KV cache, shorter ones
/// padded on the left and masked out, and generation continues from per-row caches. Every row
/// computes what it computes alone, up to rounding. Rows are added one by one; the batch keeps
/// the model and its rows' prompts alive. Not thread-safe: one thread builds and runs a batch.
class MixedBatch {
 public:
  explicit MixedBatch(const Model& model);
  ~MixedBatch();
  MixedBatch(const MixedBatch&) = delete;
  MixedBatch& operator=(const MixedBatch&) = delete;

  /// Appends row size(): prompt (null = the bare model) must belong to this batch's model and
  /// have no unfrozen layers (two-stage prompts run on their own copy of the model); ids is (T),
  /// the row's tokens without padding; options are its decoding settings (generate()), its
  /// pad_token_id written after the row finished.
  void addRow(const PromptModel* prompt, const int64_t* ids, int64_t T, const GenerateOptions& options);
  int64_t size() const;
  /// T: the longest row's token count.
  int64_t maxTokens() const;
  /// N: the largest max_new_tokens of the rows.
  int64_t maxNewTokens() const;

  /// Logits of every row's text positions: out is (B, T, V), row r's T_r positions right-aligned
  /// (the last T_r columns), the columns before them 0.
  void logits(float* out) const;

  /// Autoregressive decoding (decoders only), each row with its own settings (a sampled row
  /// draws with its own seed as it does alone). eos_ids is (E); out_tokens is (B, N); out_lengths
  /// is (B): tokens generated per row, EOS included.
  void generate(const int64_t* eos_ids, int64_t E, int64_t* out_tokens, int64_t* out_lengths) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Step-level continuous batching (serving): a decoding batch that rows join and leave between
/// steps. A row added between two steps is prefilled at the next step together with the others
/// added meanwhile (as one mixed batch, see MixedBatch), and its KV cache joins the running
/// batch's, left-padded and masked; a finished or cancelled row leaves it. Every row computes the
/// tokens it computes alone (Model::generate with B = 1), up to rounding; a sampled row draws with
/// its own seed. The session keeps the model alive; a row's prompt is used only by add(). Not
/// thread-safe: one thread drives a session.
class DecodeSession {
 public:
  /// eos_ids (E) end a row when generated (may be null when E = 0).
  DecodeSession(const Model& model, const int64_t* eos_ids, int64_t E);
  ~DecodeSession();
  DecodeSession(const DecodeSession&) = delete;
  DecodeSession& operator=(const DecodeSession&) = delete;

  /// Queues a row for the next step: prompt (null = the bare model) as in MixedBatch::addRow;
  /// ids is (T), its tokens without padding; options are its decoding settings with
  /// max_new_tokens >= 1. Checks the row now (ids, settings, positions). Returns the row's id.
  int64_t add(const PromptModel* prompt, const int64_t* ids, int64_t T, const GenerateOptions& options);
  /// Drops a queued or running row (e.g. its request timed out); false if there is none by that id.
  bool cancel(int64_t id);
  /// Queued and running rows: the most entries the next step() writes.
  int64_t size() const;
  /// Prefills the queued rows, picks one token for every row and feeds the unfinished ones back.
  /// Writes, for each of the n rows it stepped (n <= size() before the call, returned), the row's
  /// id, its token and 1 where the row ended with it (EOS or max_new_tokens), else 0; each of the
  /// three arrays holds size() entries.
  int64_t step(int64_t* out_ids, int64_t* out_tokens, int64_t* out_done);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// A classification head in front of a frozen Model (optionally behind a PromptModel): its own
/// named fp32 parameters ("classifier.weight", "score.weight", "soft_verbalizer.weight"; none for
/// a verbalizer) and, for verbalizers, the label words.
class Classifier {
 public:
  /// Label words (verbalizers; null / 0 for the linear head): num_words words, word i of class
  /// word_class[i] with tokens word_tokens[word_offsets[i] .. word_offsets[i + 1]).
  Classifier(const Model& model, const ClassifierSpec& spec, const int64_t* word_class, const int64_t* word_offsets,
             const int64_t* word_tokens, int64_t num_words);
  ~Classifier();
  Classifier(const Classifier&) = delete;
  Classifier& operator=(const Classifier&) = delete;

  int64_t numClasses() const;
  int64_t numParameters() const;
  std::string parameterName(int64_t index) const;
  int64_t parameterShape(const char* name, int64_t* dims) const;
  int64_t parameterNumel(const char* name) const;
  void readParameter(const char* name, float* out) const;
  void writeParameter(const char* name, const float* values);

  /// Class scores (B, K): the linear head's logits, or the verbalizer's aggregated label-word
  /// log-probabilities. prompt may be null; ids, mask (and token_types, may be null) are (B, T);
  /// slots (B) are the text positions of the [MASK] / next-token slot (verbalizers; may be null
  /// for the linear head).
  void scores(const PromptModel* prompt, const int64_t* ids, const int64_t* mask, const int64_t* token_types,
              const int64_t* slots, int64_t B, int64_t T, float* out) const;

  /// Contextual calibration of a verbalizer: the mean slot logits of these content-free inputs
  /// become the reference its label-word probabilities are divided by (OpenPrompt's calibrate).
  void calibrate(const PromptModel* prompt, const int64_t* ids, const int64_t* mask, const int64_t* slots, int64_t B,
                 int64_t T);
  void clearCalibration();

 private:
  friend class PromptTrainer;
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

/// Trains the trainable parameters of a PromptModel (and of a Classifier) in front of a frozen
/// Model; holds the AdamW moments and step counters.
class PromptTrainer {
 public:
  /// The causal-LM objective (decoders).
  PromptTrainer(const Model& model, PromptModel& prompt, const TrainOptions& options);
  /// Classification through `classifier` (prompt may be null: the head alone, e.g. a linear probe).
  PromptTrainer(const Model& model, PromptModel* prompt, Classifier& classifier, const TrainOptions& options);
  ~PromptTrainer();
  PromptTrainer(const PromptTrainer&) = delete;
  PromptTrainer& operator=(const PromptTrainer&) = delete;

  /// One micro-batch in one call: forward, loss over labels != -100, backward into the
  /// trainable parameters only, accumulate; every grad_accum calls also clip, AdamW and
  /// schedule. ids, mask, labels are (B, T) (labels -100 where ignored). A non-finite loss is
  /// returned as it is, without a backward pass or update (the accumulation cycle is dropped),
  /// so the caller can stop with a clear "diverged" error.
  StepStats trainMicroBatch(const int64_t* ids, const int64_t* mask, const int64_t* labels,
                            int64_t B, int64_t T);

  /// Loss without gradients (dropout off), same inputs as trainMicroBatch.
  EvalStats evaluate(const int64_t* ids, const int64_t* mask, const int64_t* labels, int64_t B,
                     int64_t T) const;

  /// Classification: one micro-batch of B examples with class labels (B) in [0, K), slots (B)
  /// for verbalizers (may be null for the linear head), token_types (B, T) or null. The loss is
  /// the options' class loss; label_tokens counts the examples.
  StepStats trainClassBatch(const int64_t* ids, const int64_t* mask, const int64_t* token_types,
                            const int64_t* slots, const int64_t* labels, int64_t B, int64_t T);
  /// Class weights (the focal alpha / cross-entropy weight), one per class; null restores 1.
  void setClassWeights(const double* weights, int64_t K);

  /// AdamW moments of one parameter for checkpoints: each is the parameter's numel floats
  /// (zeros before its first update). Bias correction counts steps per parameter, as
  /// torch.optim.AdamW does, so layers unfrozen in stage 2 start their own count at 1.
  void readMoments(const char* name, float* exp_avg, float* exp_avg_sq) const;
  void writeMoments(const char* name, const float* exp_avg, const float* exp_avg_sq);
  int64_t optimizerStep() const;
  /// Resumes the counters of a checkpoint (optimizer steps taken; every parameter's AdamW
  /// bias-correction step is set to it) and discards a half-accumulated gradient.
  void setOptimizerStep(int64_t step);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;  // shared: prompts keep their model alive, trainers their prompt
};

}  // namespace ptune
