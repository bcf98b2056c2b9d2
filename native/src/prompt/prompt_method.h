// Prompt-learning methods behind one interface: each owns named parameters and turns a batch's
// token embeddings into what enters the frozen model — input-level virtual tokens (prompt
// tuning, P-tuning, composite and dynamic prompts) and/or per-layer key/value prefixes (prefix
// tuning / P-tuning v2). Semantics follow PEFT (src/peft/tuners/{prompt_tuning,p_tuning,
// prefix_tuning}); dimensions: B batch, T tokens, P virtual tokens, C hidden, L layers,
// G key/value heads, D head dim.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <memory>
#include <string>
#include <vector>

#include "ptune/ptune.h"

namespace ptune::prompt {

constexpr int64_t kIgnoreIndex = -100;

/// One named parameter; the tensor handle is shared with the method that uses it.
struct NamedParameter {
  std::string name;
  at::Tensor tensor;         // fp32 (fp64 in tests) whatever the model computes in, on its device
  bool trainable = true;
  double learning_rate = 0;  // 0 = the trainer's base rate
};

/// What a method contributes to one batch.
struct PromptInputs {
  at::Tensor input_prompt;                 // (B, P, C), or undefined when none
  std::vector<at::Tensor> prefix_keys;     // per layer (B, G, P, D), or empty
  std::vector<at::Tensor> prefix_values;   // per layer (B, G, P, D), or empty
};

class PromptMethodImpl {
 public:
  /// Parameters live on `device` (initialised on the CPU, then moved: the same values everywhere).
  explicit PromptMethodImpl(at::Device device) : device_(device) {}
  virtual ~PromptMethodImpl() = default;
  /// token_embeds is (B, T, C); mask is (B, T) bool. training enables dropout.
  virtual PromptInputs build(const at::Tensor& token_embeds, const at::Tensor& mask,
                             bool training) const = 0;
  /// Seeds the dropout masks of the next training forward passes. The trainer passes its
  /// micro-step, so masks depend only on (spec.seed, micro-step) and a resumed run draws the same.
  virtual void seedDropout(int64_t micro_step) {}
  /// PEFT's saved `prompt_embeddings`, or undefined when PEFT has no such tensor.
  virtual at::Tensor peftEmbeddings() const = 0;
  virtual int64_t numVirtualTokens() const = 0;

  std::vector<NamedParameter>& parameters() { return parameters_; }
  const std::vector<NamedParameter>& parameters() const { return parameters_; }
  NamedParameter& parameter(const std::string& name);
  const NamedParameter& parameter(const std::string& name) const;

 protected:
  /// Registers a parameter (initialised on the CPU) and returns its tensor handle, on the device.
  at::Tensor add(const std::string& name, at::Tensor tensor);

 private:
  at::Device device_;
  std::vector<NamedParameter> parameters_;
};

/// Dimensions a method needs from the model.
struct ModelDims {
  int64_t hidden;     // C
  int64_t layers;     // L
  int64_t kv_heads;   // G
  int64_t head_dim;   // D
  at::ScalarType dtype;  // of the parameters: the master dtype (core/dtypes.h), not the model's compute dtype
  at::Device device = at::kCPU;  // where the model computes
};

/// Creates a method with PyTorch's default initialisation (seeded by spec.seed, drawn on a CPU
/// generator whatever the device, so that every device starts from the same values as PEFT).
/// block_sizes splits prompt tuning into composite blocks (empty = one block "embedding").
std::unique_ptr<PromptMethodImpl> createMethod(const PromptSpec& spec, const ModelDims& dims,
                                               const std::vector<int64_t>& block_sizes);

}  // namespace ptune::prompt
