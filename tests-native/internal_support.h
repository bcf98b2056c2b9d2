// Helpers of the tests that reach below the façade (libtorch types): the training loss exactly
// as api/ptune.cpp forms it, prompt methods with chosen parameters, and a standard padded batch.
#pragma once

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>  // at::NoGradGuard (not in ATen.h of libtorch 2.x)
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/accumulate_grad.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "loss/linear_cross_entropy.h"
#include "models/backbone.h"
#include "prompt/prompt_method.h"
#include "prompt/prompted_input.h"
#include "ptune/ptune.h"
#include "test_support.h"

namespace ptune_test {

/// ModelDims of stories260K in dtype.
inline ptune::prompt::ModelDims storiesDims(at::ScalarType dtype) {
  const ptune::ModelSpec c = stories260kConfig();
  return ptune::prompt::ModelDims{c.hidden_size, c.num_hidden_layers, c.num_key_value_heads,
                                  c.head_dim, dtype, at::kCPU};
}

/// The stories260K backbone in dtype (fp64 for finite differences).
inline std::unique_ptr<ptune::models::Backbone> storiesBackbone(at::ScalarType dtype) {
  const ptune::io::WeightStore weights(kStoriesDir);
  return ptune::models::loadBackbone(weights, stories260kConfig(), dtype);
}

/// A prompt-tuning method whose single block ("embedding") holds `prompt` (P, C), in its dtype.
inline std::unique_ptr<ptune::prompt::PromptMethodImpl> promptTuningWith(const at::Tensor& prompt) {
  auto method = ptune::prompt::createMethod(
      makeSpec(ptune::PromptMethod::kPromptTuning, prompt.size(0)),
      storiesDims(prompt.scalar_type()), {});
  at::NoGradGuard no_grad;
  method->parameter("embedding").tensor.copy_(prompt);
  return method;
}

/// Mean training loss as api/ptune.cpp computes it: prepareInput -> forward with the returned
/// cache (prefixes) -> labels padded by the input-level virtual tokens, shifted by one
/// (position s predicts label s+1) -> fused linear cross-entropy / label tokens.
/// method may be null; ids, mask, labels are (B, T).
inline at::Tensor methodLoss(const ptune::models::Backbone& model,
                             const ptune::prompt::PromptMethodImpl* method, const at::Tensor& ids,
                             const at::Tensor& mask, const at::Tensor& labels, bool training = false) {
  namespace prompt = ptune::prompt;
  prompt::PreparedInput in = prompt::prepareInput(model, method, ids, mask, training);
  const at::Tensor hidden = model.forward(in.input, &in.cache);
  const at::Tensor padded = prompt::padLabels(labels, in.input_virtual_tokens);  // (B, Pin+T)
  const int64_t S = hidden.size(1), C = hidden.size(2);
  const at::Tensor h = hidden.narrow(1, 0, S - 1).reshape({-1, C});  // (B*(S-1), C)
  const at::Tensor y = padded.narrow(1, 1, S - 1).reshape({-1});     // (B*(S-1))
  const int64_t n = y.ne(prompt::kIgnoreIndex).sum().item<int64_t>();
  return ptune::loss::linearCrossEntropySum(h, model.requireHead().weight(), y) / static_cast<double>(n);
}

/// Every leaf that backward from `root` would accumulate a gradient into.
inline std::vector<at::Tensor> gradientLeaves(const at::Tensor& root) {
  std::vector<at::Tensor> leaves;
  std::set<torch::autograd::Node*> seen;
  std::vector<torch::autograd::Node*> stack = {root.grad_fn().get()};
  while (!stack.empty()) {
    torch::autograd::Node* node = stack.back();
    stack.pop_back();
    if (node == nullptr || !seen.insert(node).second) continue;
    if (auto* acc = dynamic_cast<torch::autograd::AccumulateGrad*>(node)) {
      leaves.push_back(acc->variable);
    }
    for (const auto& edge : node->next_edges()) stack.push_back(edge.function.get());
  }
  return leaves;
}

/// A batch of B = 2, T = 12: row 0 full (first two labels ignored, as for an instruction);
/// row 1 right-padded after 8 tokens (padding ids arbitrary, labels -100, mask 0).
inline void paddedBatch(at::Tensor& ids, at::Tensor& mask, at::Tensor& labels) {
  const auto kLong = at::TensorOptions().dtype(at::kLong);
  const std::vector<int64_t> lily = lilyWithBos();
  const int64_t T = 12;
  ids = at::zeros({2, T}, kLong);
  mask = at::zeros({2, T}, kLong);
  labels = at::full({2, T}, ptune::prompt::kIgnoreIndex, kLong);
  for (int64_t t = 0; t < T; ++t) {
    ids[0][t] = lily[static_cast<size_t>(t)];
    mask[0][t] = 1;
    if (t >= 2) labels[0][t] = lily[static_cast<size_t>(t)];
  }
  for (int64_t t = 0; t < T; ++t) {
    if (t < 8) {
      ids[1][t] = lily[static_cast<size_t>(t + 4)];
      mask[1][t] = 1;
      labels[1][t] = lily[static_cast<size_t>(t + 4)];
    } else {
      ids[1][t] = 5 + t;  // padding
    }
  }
}

}  // namespace ptune_test
