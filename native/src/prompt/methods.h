// Constructors of the prompt methods (one file each) and PyTorch's default initialisers.
#pragma once

#include <ATen/core/Generator.h>

#include "prompt/prompt_method.h"

namespace ptune::prompt {

/// nn.Linear's default: weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
at::Tensor uniformInit(at::IntArrayRef shape, int64_t fan_in, at::Generator& gen,
                       at::ScalarType dtype);
/// nn.Embedding's default: N(0, 1).
at::Tensor normalInit(at::IntArrayRef shape, at::Generator& gen, at::ScalarType dtype);

std::unique_ptr<PromptMethodImpl> makePromptTuning(const PromptSpec& spec, const ModelDims& dims,
                                                   const std::vector<int64_t>& block_sizes,
                                                   at::Generator& gen);
std::unique_ptr<PromptMethodImpl> makePTuning(const PromptSpec& spec, const ModelDims& dims,
                                              at::Generator& gen);
std::unique_ptr<PromptMethodImpl> makePrefixTuning(const PromptSpec& spec, const ModelDims& dims,
                                                   at::Generator& gen);
std::unique_ptr<PromptMethodImpl> makeDynamicPrompt(const PromptSpec& spec, const ModelDims& dims,
                                                    at::Generator& gen);

}  // namespace ptune::prompt
