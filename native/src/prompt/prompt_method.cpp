#include "prompt/prompt_method.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "core/check.h"
#include "prompt/methods.h"

namespace ptune::prompt {

NamedParameter& PromptMethodImpl::parameter(const std::string& name) {
  for (auto& p : parameters_) {
    if (p.name == name) return p;
  }
  std::string known;
  for (const auto& p : parameters_) known += (known.empty() ? "" : ", ") + p.name;
  throw Error(detail::concat("no prompt parameter named '", name, "' (this method has: ", known, ")"));
}

const NamedParameter& PromptMethodImpl::parameter(const std::string& name) const {
  return const_cast<PromptMethodImpl*>(this)->parameter(name);
}

at::Tensor PromptMethodImpl::add(const std::string& name, at::Tensor tensor) {
  tensor = tensor.to(device_).contiguous();
  tensor.set_requires_grad(true);
  parameters_.push_back(NamedParameter{name, tensor, true, 0});
  return tensor;
}

at::Tensor uniformInit(at::IntArrayRef shape, int64_t fan_in, at::Generator& gen,
                       at::ScalarType dtype) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  return at::empty(shape, at::TensorOptions().dtype(dtype)).uniform_(-bound, bound, gen);
}

at::Tensor normalInit(at::IntArrayRef shape, at::Generator& gen, at::ScalarType dtype) {
  return at::empty(shape, at::TensorOptions().dtype(dtype)).normal_(0.0, 1.0, gen);
}

std::unique_ptr<PromptMethodImpl> createMethod(const PromptSpec& spec, const ModelDims& dims,
                                               const std::vector<int64_t>& block_sizes) {
  PTUNE_CHECK(spec.num_virtual_tokens > 0, "num_virtual_tokens must be positive, got ",
              spec.num_virtual_tokens, "; a prompt or prefix of length 0 does nothing");
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(spec.seed);
  switch (static_cast<PromptMethod>(spec.method)) {
    case PromptMethod::kPromptTuning:
      return makePromptTuning(spec, dims, block_sizes, gen);
    case PromptMethod::kPTuning:
      return makePTuning(spec, dims, gen);
    case PromptMethod::kPrefixTuning:
      return makePrefixTuning(spec, dims, gen);
    case PromptMethod::kDynamic:
      return makeDynamicPrompt(spec, dims, gen);
  }
  throw Error(detail::concat("unknown prompt method ", spec.method));
}

}  // namespace ptune::prompt
